#!/usr/bin/env bash
# Main job from a fresh clone: build vortexdb and run its demo on generated data.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-ort.sh
cargo build --release
./target/release/vortexdb demo --out "${1:-demo-out}"
