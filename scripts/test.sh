#!/usr/bin/env bash
# Runs every test from a fresh clone: formatting, lints (Rust and Python), unit and
# integration tests. Installs what it needs by itself.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/ruff ]; then
  python3 -m venv .venv
  .venv/bin/pip install --quiet --disable-pip-version-check ruff
fi
.venv/bin/ruff check benches
cargo fmt --check
cargo clippy --all-targets -- -D warnings
cargo test --release
