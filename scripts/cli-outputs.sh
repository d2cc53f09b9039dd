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
# The same command for people (stdout as text), into a directory the JSON run does not use.
text() { local name=$1; shift; "$BIN" "$@" >"$OUT/text/$name.txt" 2>/dev/null || echo "exit $?" >>"$OUT/text/$name.txt"; }
# A command that fails: its stderr (the message people see) and exit code.
fails() { local name=$1; shift; "$BIN" "$@" >"$OUT/text/$name.txt" 2>&1 || echo "exit $?" >>"$OUT/text/$name.txt"; }
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
step eval-knn eval "$S" --sample phantom --knn 5 --reference phantom --allow-in-sample --out "$OUT/eval-knn"
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
mkdir -p "$OUT/text" "$OUT/t"
text info info "$S"
text genes query genes "$S" --genes TUM01,GLD01 --top 7 --out "$OUT/t/g"
text markers query profile "$S" --markers FAT01,FAT02 --top 4 --out "$OUT/t/m"
text profile query profile "$S" --profile "$OUT/profile.csv" --top 4
text patch query patch "$S" --sample phantom --at 4,60,60 --top 5 --exact
text predict predict "$S" --sample phantom --out "$OUT/t/p.parquet" --genes TUM01 --volumes "$OUT/t/pv"
text predict-knn predict "$S" --sample phantom --out "$OUT/t/pk.parquet" --knn 5 --reference phantom
text domains domains "$S" --sample phantom --k 4 --segmentation "$D/phantom/labels.npy"
text eval eval "$S" --sample phantom --segmentation "$D/phantom/labels.npy"
text spots spots export "$S" --sample phantom --out "$OUT/t/spots"
text vimport vectors import "$S" --collection raw2 "$OUT/vec.npy"
text vimport-again vectors import "$S" --collection raw2 "$OUT/vec.npy"
text vsearch vectors search "$S" --collection raw2 --queries "$OUT/vec.npy" --k 4 --out "$OUT/t/ids.npy"
text delete vectors delete "$S" --collection raw2 --ids 1,2,400
text compact vectors compact "$S" --collection raw2
text check check "$S"
text models models list "$S"
text phantom phantom --seed 3 --shape 16,96,96 --out "$OUT/t/ph"
text init init "$OUT/t/db"
text add models add "$OUT/t/db" default
text ingest ingest volume "$OUT/t/db" --sample s3 "$OUT/t/ph/volume.npy"
text ingest-again ingest volume "$OUT/t/db" --sample s3 "$OUT/t/ph/volume.npy"
text ingest-spots ingest spots "$OUT/t/db" --sample s3 --format parquet "$OUT/t/ph/spots.parquet"
text ingest-image ingest image "$OUT/t/db" --sample he --um-per-px 4 "$OUT/t/ph/planes/plane_008.png"
text ingest-sections ingest sections "$OUT/t/db" --sample st --spacing-um 64 --um-per-px 4 "$OUT/t/ph/planes/plane_008.png" "$OUT/t/ph/planes/plane_008.png"
fails err-sample predict "$S" --sample nope --out "$OUT/t/x.parquet"
fails err-gene query genes "$S" --genes TUM1
fails err-store info "$OUT/t/none"
fails err-model query genes "$OUT/t/db2" --genes A
fails err-k domains "$S" --sample phantom --k 0
fails err-qc ingest spots "$OUT/t/db" --sample s4 --min-genes 100000 --format parquet "$OUT/t/ph/spots.parquet"
fails err-format ingest spots "$OUT/t/db" --sample s4 "$OUT/t/ph/volume.npy"
fails err-2d query patch "$S" --sample phantom --at 4,60,60 --target 2d
fails err-phantom phantom --seed 3 --shape 16,96,96 --out "$OUT/t/ph"
fails err-demo demo --out "$OUT/t" --shape 16,96,96
fails err-filter query genes "$S" --genes TUM01 --percentile 100 --min-fraction 1
fails err-dim vectors search "$S" --collection raw2 --queries "$D/phantom/volume.npy" --k 2 --out "$OUT/t/x.npy"
echo "outputs in $OUT"
