#!/usr/bin/env bash
# Runs a fixed set of CLI commands (the demo, then every command that writes files on
# the demo's store) into OUT, for comparing the CLI's outputs across a change:
#   bash scripts/cli-outputs.sh OUT [BIN]   then   python3 scripts/compare-outputs.py A B
# Every command's stdout (--json) is kept as OUT/<step>.json.
set -euo pipefail
OUT=$(realpath -m "$1")
BIN=$(realpath "${2:-target/release/vortexdb}")
cd "$(dirname "$0")/.."
export ORT_DYLIB_PATH=${ORT_DYLIB_PATH:-$PWD/.ort/lib/libonnxruntime.so.1.31.1}
rm -rf "$OUT"
mkdir -p "$OUT"
D=$OUT/demo
S=$D/store
step() { local name=$1; shift; "$BIN" --json "$@" >"$OUT/$name.json"; }
step demo demo --out "$D" --shape 32,160,160 --seed 7
step info info "$S"
step genes query genes "$S" --genes TUM01,GLD01 --top 7 --out "$OUT/q-genes"
step genes-sample query genes "$S" --genes STR01 --sample phantom --top 3 --slices 2 --out "$OUT/q-genes2"
printf 'gene,value\nTUM01,9\nTUM02,7\nGLD01,0.5\nSTR03,1\n' >"$OUT/profile.csv"
step profile query profile "$S" --profile "$OUT/profile.csv" --top 4 --out "$OUT/q-profile"
step markers query profile "$S" --markers FAT01,FAT02 --top 4 --slices 1 --out "$OUT/q-markers"
step patch query patch "$S" --sample phantom --at 4,60,60 --top 5 --exact
step patch-hnsw query patch "$S" --sample phantom --at 8,40,80 --top 5
step predict predict "$S" --sample phantom --out "$OUT/pred.parquet" --genes TUM01,FAT01 --volumes "$OUT/pred-vol"
step predict-knn predict "$S" --sample phantom --out "$OUT/pred-knn.parquet" --knn 5 --reference phantom
step domains domains "$S" --sample phantom --k 4 --segmentation "$D/phantom/labels.npy" --out "$OUT/dom"
step eval eval "$S" --sample phantom --segmentation "$D/phantom/labels.npy" --out "$OUT/eval"
step eval-knn eval "$S" --sample phantom --knn 5 --reference phantom --out "$OUT/eval-knn"
step spots spots export "$S" --sample phantom --out "$OUT/spots"
python3 - "$OUT/vec.npy" <<'PY'
import sys, struct
import random
random.seed(3)
n, d = 300, 16
hdr = "{'descr': '<f4', 'fortran_order': False, 'shape': (%d, %d), }" % (n, d)
hdr = hdr + " " * (63 - (len(hdr) + 10) % 64) + "\n"
with open(sys.argv[1], "wb") as f:
    f.write(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(hdr)) + hdr.encode())
    for _ in range(n * d):
        f.write(struct.pack("<f", random.uniform(-1, 1)))
PY
step vimport vectors import "$S" --collection raw "$OUT/vec.npy"
step vsearch vectors search "$S" --collection raw --queries "$OUT/vec.npy" --k 4 --out "$OUT/vsearch.npy" --distances "$OUT/vdist.npy"
step vsearch-exact vectors search "$S" --collection raw --queries "$OUT/vec.npy" --k 4 --exact --out "$OUT/vsearch-exact.npy"
step check check "$S"
echo "outputs in $OUT"
