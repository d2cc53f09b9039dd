#!/usr/bin/env bash
# Section-to-volume registration scored on the phantom, one command:
#   bash scripts/plane-eval.sh [WORK_DIR]      (default: plane-work)
# Environment: SEED (phantom seed, default 11: one the built-in model never saw),
# N (oblique sections, default 20), SHAPE (phantom Z,Y,X, default 96,640,640).
# 1. generates the phantom with N H&E sections on random oblique planes (tilt <= 10
#    degrees, random depth, in-plane rotation, shift and scale; truth in phantom.json);
# 2. registers each section to the volume from its image alone
#    (`vortexdb register section-to-volume`), timing each fit and its peak memory;
# 3. ingests the volume with the built-in model, and each section's spots twice: placed
#    in 3D by the true plane and by the recovered one (`ingest spots --plane`);
# 4. evaluates both spot sets (`vortexdb eval`, predictor head) and writes
#    WORK_DIR/plane-eval.json and .md: per section the depth and tilt errors, the PCC
#    from the true and from the recovered plane (scripts/plane-eval.py).
set -euo pipefail
cd "$(dirname "$0")/.."
W=${1:-plane-work}
SEED=${SEED:-11}
N=${N:-20}
SHAPE=${SHAPE:-96,640,640}
bash scripts/setup-python.sh > /dev/null
bash scripts/setup-ort.sh > /dev/null
cargo build --release --quiet
ORT_DYLIB_PATH=$(ls "$PWD"/.ort/lib/libonnxruntime.so* | head -1)
export ORT_DYLIB_PATH
V=$PWD/target/release/vortexdb
PY=.venv/bin/python
rm -rf "$W"
mkdir -p "$W/planes"
$V phantom --seed "$SEED" --shape "$SHAPE" --oblique "$N" --out "$W/ph" > /dev/null
for i in $(seq -f %02g 0 $((N - 1))); do
  /usr/bin/time -f "%e %M" -o "$W/planes/time_$i.txt" \
    $V --json register section-to-volume "$W/ph/volume.npy" "$W/ph/oblique/section_$i.png" \
      --um-per-px 4 --um-per-voxel 4 --out "$W/planes/plane_$i.json" --min-score 0 > "$W/planes/fit_$i.json"
done
# The true planes as plane files, for the same spot ingest.
$PY scripts/plane-eval.py truth "$W"
$V init "$W/store" > /dev/null
$V models add "$W/store" default > /dev/null
$V ingest volume "$W/store" --sample ph "$W/ph/volume.npy" > /dev/null
for i in $(seq -f %02g 0 $((N - 1))); do
  for k in true fit; do
    $V ingest spots "$W/store" --sample "${k}_$i" --plane "$W/planes/${k}_plane_$i.json" \
      "$W/ph/oblique/spots_$i.parquet" > /dev/null
    $V --json eval "$W/store" --sample ph --spots "${k}_$i" > "$W/planes/eval_${k}_$i.json"
  done
done
$PY scripts/plane-eval.py report "$W"
