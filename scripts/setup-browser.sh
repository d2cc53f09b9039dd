#!/usr/bin/env bash
# Installs Debian's chromium and chromium-driver for the viewer's browser tests
# (bindings/python/tests/test_viewer.py, Selenium from requirements-test.txt), only when
# /usr/bin/chromium or /usr/bin/chromedriver is missing; does nothing otherwise.
set -euo pipefail
if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then
  exit 0
fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  if ! command -v sudo >/dev/null; then
    echo "setup-browser: not root and no sudo: install chromium and chromium-driver yourself" >&2
    exit 1
  fi
  sudo="sudo"
fi
echo "setup-browser: installing chromium and chromium-driver (apt-get)" >&2
$sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq
$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium chromium-driver
[ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]
