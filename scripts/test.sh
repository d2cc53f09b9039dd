#!/usr/bin/env bash
# Runs every test from a fresh clone: formatting, lints, Rust unit and integration
# tests. Installs what it needs by itself (nothing beyond the Rust toolchain yet).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo fmt --check
cargo clippy --all-targets -- -D warnings
cargo test --release --all-targets
