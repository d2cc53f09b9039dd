#!/usr/bin/env bash
# Produces the default model in models/default from the synthetic phantom, in one
# command: builds vortexdb, generates two cohort phantoms (seeds 1 and 3: stages I and
# II, two sources for the domain-adversarial loss) and a volume-of-interest phantom
# (seed 2: its first two planes for stage III, the other four held out for evaluation), trains the three stages, exports ONNX + manifest.json with the
# metrics, and checks ONNX parity. ~10 minutes on 2 idle cores. Extra arguments go to
# `python -m vortex_train phantom` (e.g. --epochs-1 5 for a quick run).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-python.sh
cargo build --release --quiet
work=${WORK:-training/work/default}
mkdir -p "$work"
for seed in 1 2 3; do
  [ -f "$work/phantom-$seed/phantom.json" ] ||
    ./target/release/vortexdb phantom --seed "$seed" --out "$work/phantom-$seed"
done
PYTHONPATH=training .venv/bin/python -m vortex_train phantom \
  --cohort "$work/phantom-1" "$work/phantom-3" --voi "$work/phantom-2" --work "$work/checkpoints" \
  --out "${OUT:-models/default}" "$@"
