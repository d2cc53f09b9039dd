#!/usr/bin/env bash
# CUDA execution provider check: runs the default model's 3D encoder on the CPU and
# on the GPU through the same vortexdb binary and the same onnxruntime-gpu library,
# compares the embeddings, times `models embed` on both devices, then ingests the
# same phantom volume with --device cpu and --device cuda and compares the stores.
#
#   VORTEXDB=target/release/vortexdb        (built with --features cuda)
#   ORT_DYLIB_PATH=.../libonnxruntime.so.1.31.1  (from onnxruntime-gpu)
#   LD_LIBRARY_PATH=<CUDA 13 + cuDNN 9 library folders>
#   GPU_DEVICE=cuda  (cpu to dry-run the script on a machine without a GPU)
#   bash benches/gpu_check.sh WORKDIR
set -euo pipefail
bin=${VORTEXDB:-target/release/vortexdb}
dev=${GPU_DEVICE:-cuda}
work=${1:-/tmp/vortex-gpu}
patches=${PATCHES:-4096}
threads=${CPU_THREADS:-0}
rm -rf "$work" && mkdir -p "$work"
py=$(command -v python3)

echo "== machine"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null || echo "no nvidia-smi"
echo "cpu cores: $(nproc)"

echo "== error for a GPU that does not exist (must not fall back to the CPU)"
if "$bin" models embed models/default --input /dev/null --out "$work/x.npy" --device cuda:7 2>"$work/err7"; then
  echo "UNEXPECTED: cuda:7 succeeded"
else
  cat "$work/err7"
fi

echo "== inputs: $patches random patches 16x1x32x32"
"$py" - "$work" "$patches" <<'PY'
import sys
import numpy as np
work, n = sys.argv[1], int(sys.argv[2])
x = np.random.default_rng(0).standard_normal((n, 16, 1, 32, 32)).astype("float32")
np.save(f"{work}/x.npy", x)
PY

for b in 64 256; do
  echo "== embed batch $b: cpu (threads=$threads)"
  "$bin" models embed models/default --input "$work/x.npy" --out "$work/cpu_$b.npy" \
    --device cpu --threads "$threads" --batch "$b" --repeat 3 --json
  echo "== embed batch $b: $dev"
  "$bin" models embed models/default --input "$work/x.npy" --out "$work/gpu_$b.npy" \
    --device "$dev" --batch "$b" --repeat 5 --json
done
"$py" - "$work" <<'PY'
import sys
import numpy as np
w = sys.argv[1]
for b in (64, 256):
    c, g = np.load(f"{w}/cpu_{b}.npy"), np.load(f"{w}/gpu_{b}.npy")
    print(f"batch {b}: embeddings {c.shape}, max |cpu - gpu| = {np.abs(c - g).max():.3e}")
PY

echo "== ingest the same phantom volume on both devices"
"$bin" phantom --seed 2 --out "$work/ph" --shape 48,320,320 >/dev/null
for run in "cpu cpu" "gpu $dev"; do
  set -- $run
  "$bin" init "$work/store_$1" >/dev/null
  "$bin" models add "$work/store_$1" models/default >/dev/null
  "$bin" ingest volume "$work/store_$1" --sample ph "$work/ph/volume.npy" --device "$2" --json \
    2>"$work/ingest_$1.log"
done
"$bin" info "$work/store_cpu" | sed -n 2p
"$bin" info "$work/store_gpu" | sed -n 2p
