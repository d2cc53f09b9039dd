#!/usr/bin/env bash
# Builds the Python package (bindings/python, pyo3 + maturin from PyPI) and installs it
# into .venv-py (ignored) beside its pinned test environment (scanpy, anndata, pytest).
# The environment is installed once per bindings/python/requirements-test.txt; the
# package is rebuilt every time (cargo reuses the shared target/ directory: ~1 min
# after `cargo build --release --lib --no-default-features`, ~5 min cold).
set -euo pipefail
cd "$(dirname "$0")/.."
venv=.venv-py
stamp=$venv/.requirements.sha256
want=$(sha256sum bindings/python/requirements-test.txt | cut -d' ' -f1)
python=$(command -v python3.11 || command -v python3)
[ -x $venv/bin/python ] || "$python" -m venv $venv
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "setup-python-package: installing the test environment into $venv" >&2
  $venv/bin/pip install --quiet --no-cache-dir --disable-pip-version-check \
    -r bindings/python/requirements-test.txt
  echo "$want" > "$stamp"
fi
echo "setup-python-package: building and installing bindings/python" >&2
$venv/bin/pip install --quiet --disable-pip-version-check --force-reinstall --no-deps \
  ./bindings/python
# The package's own dependencies must be satisfied by the pinned environment.
$venv/bin/pip check
