#!/usr/bin/env bash
# Runs every test from a fresh clone: formatting, lints (Rust and Python), Rust unit and
# integration tests, training/ tests (losses, stages, ONNX parity, loaders, default
# model). Installs what it needs by itself.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-python.sh
.venv/bin/ruff check benches training
.venv/bin/ruff format --check training
cargo fmt --check
cargo clippy --all-targets -- -D warnings
cargo test --release
(cd training && ../.venv/bin/python -m pytest -q)
