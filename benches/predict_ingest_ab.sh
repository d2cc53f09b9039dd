#!/usr/bin/env bash
# Ingest throughput with and without the predictor network (issue 8): the default
# model against a copy of it without predictor.onnx, interleaved, each into a fresh
# store. Prints model, patches/s, seconds per run.
#
#     bash benches/predict_ingest_ab.sh [demo-out/phantom/volume.npy]
set -euo pipefail
cd "$(dirname "$0")/.."
vol=${1:-demo-out/phantom/volume.npy}
B=./target/release/vortexdb
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cp -r models/default "$tmp/nopred"
rm "$tmp/nopred/predictor.onnx"
python3 - "$tmp/nopred/manifest.json" <<'PY'
import json, sys
p = sys.argv[1]
m = json.load(open(p))
del m["networks"]["predictor"]
m["name"] = "vortex-tiny-nopred"
json.dump(m, open(p, "w"), indent=1)
PY
for r in 1 2; do
  for m in models/default "$tmp/nopred"; do
    rm -rf "$tmp/db"
    $B init "$tmp/db" >/dev/null
    $B models add "$tmp/db" "$m" >/dev/null
    $B ingest volume "$tmp/db" --sample ph "$vol" --json 2>/dev/null |
      python3 -c "import json,sys; d=json.load(sys.stdin); print('round $r', '$m', round(d['patches_per_second'],1), 'patches/s', round(d['seconds'],2), 's')"
  done
done
