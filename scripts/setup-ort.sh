#!/usr/bin/env bash
# Provisions the ONNX Runtime shared library vortexdb loads at run time, from PyPI
# (the only source reachable from a fresh machine): the onnxruntime==1.31.1 wheel
# (CPU), or with --gpu the onnxruntime-gpu==1.31.1 wheel plus the CUDA 13 / cuDNN 9
# runtime wheels it needs. The library lands in .ort/lib (ignored), where vortexdb
# finds it without ORT_DYLIB_PATH. Re-running is a no-op once the library is there.
set -euo pipefail
cd "$(dirname "$0")/.."
version=1.31.1
pkg=onnxruntime
dest=.ort/lib
if [ "${1:-}" = "--gpu" ]; then
  pkg=onnxruntime-gpu
  dest=.ort/gpu/lib
fi
if [ -f "$dest/libonnxruntime.so.$version" ]; then
  exit 0
fi
python=$(command -v python3.11 || command -v python3)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "setup-ort: downloading $pkg==$version from PyPI" >&2
"$python" -m pip download --quiet --disable-pip-version-check --no-deps \
  --only-binary=:all: --python-version 3.11 -d "$tmp" "$pkg==$version"
mkdir -p "$dest"
"$python" - "$tmp" "$dest" <<'PY'
import glob, os, shutil, sys, zipfile
tmp, dest = sys.argv[1], sys.argv[2]
wheel = glob.glob(os.path.join(tmp, "*.whl"))[0]
with zipfile.ZipFile(wheel) as z:
    for name in z.namelist():
        base = os.path.basename(name)
        if name.startswith("onnxruntime/capi/") and base.startswith("libonnxruntime"):
            with z.open(name) as src, open(os.path.join(dest, base), "wb") as out:
                shutil.copyfileobj(src, out)
PY
if [ "$pkg" = onnxruntime-gpu ]; then
  # CUDA 13 + cuDNN 9 user-space libraries, as onnxruntime-gpu expects them.
  "$python" -m pip install --quiet --disable-pip-version-check --target .ort/gpu/nvidia \
    nvidia-cuda-runtime-cu13 nvidia-cublas-cu13 nvidia-cufft-cu13 nvidia-curand-cu13 \
    nvidia-cudnn-cu13 nvidia-nvjitlink-cu13 || echo "setup-ort: CUDA wheels not installed; put CUDA 13 and cuDNN 9 on LD_LIBRARY_PATH yourself" >&2
  echo "setup-ort: for CUDA run with ORT_DYLIB_PATH=$PWD/$dest/libonnxruntime.so.$version and" >&2
  echo "  LD_LIBRARY_PATH=\$(find $PWD/.ort/gpu/nvidia -name lib -type d | paste -sd:)" >&2
fi
ls "$dest/libonnxruntime.so.$version" >/dev/null
echo "setup-ort: ONNX Runtime $version in $dest" >&2
