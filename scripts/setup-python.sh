#!/usr/bin/env bash
# Creates .venv (ignored) with the pinned training/ environment: PyTorch, ONNX,
# onnxruntime, NumPy, pandas, pyarrow, Pillow, pytest, ruff. Re-running is a no-op
# while training/requirements.txt is unchanged. PyTorch from PyPI is the CUDA build:
# the first install downloads ~3 GB and takes ~6 minutes on a 2-core machine.
set -euo pipefail
cd "$(dirname "$0")/.."
stamp=.venv/.requirements.sha256
want=$(sha256sum training/requirements.txt | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
[ -x .venv/bin/python ] || python3 -m venv .venv
echo "setup-python: installing training/requirements.txt into .venv (first time: several minutes)" >&2
.venv/bin/pip install --quiet --no-cache-dir --disable-pip-version-check -r training/requirements.txt
echo "$want" > "$stamp"
