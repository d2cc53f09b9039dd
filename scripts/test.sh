#!/usr/bin/env bash
# Runs every test from a fresh clone: formatting, lints (Rust and Python), Rust unit and
# integration tests, training/ tests (losses, stages, ONNX parity, loaders, default
# model, Rust-vs-Python runtime parity), the Python package's tests. Installs what it
# needs by itself (the training venv, the ONNX Runtime library, the package's venv).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-python.sh
bash scripts/setup-ort.sh
.venv/bin/ruff check benches training tests scripts bindings/python
.venv/bin/ruff format --check training tests scripts
cargo fmt --all --check
cargo clippy --all-targets -- -D warnings
cargo clippy -p vortexdb-python -- -D warnings
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --lib
cargo test --release
# The library builds without the CLI's dependencies.
cargo build --release --lib --no-default-features
if cargo tree --no-default-features -e normal | grep -E "^.*(clap|indicatif) v"; then
    echo "the library depends on clap or indicatif" >&2
    exit 1
fi
(cd training && ../.venv/bin/python -m pytest -q)
# The Python package: built by maturin from bindings/python into .venv-py, then its
# tests (the same answers as the CLI, AnnData, errors, threads, Ctrl-C).
bash scripts/setup-python-package.sh
.venv-py/bin/python -m mypy --ignore-missing-imports bindings/python/python/vortexdb
.venv-py/bin/python -m pytest -q -rs bindings/python/tests
