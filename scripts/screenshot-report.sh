#!/usr/bin/env bash
# Renders the demo's HTML report in headless Chromium (Debian package `chromium`,
# installed with apt-get when missing) and writes a full-page PNG screenshot, to look
# at the report as a person would.
#
#     bash scripts/screenshot-report.sh [demo-out/report.html] [demo-out/report.png]
set -euo pipefail
report=${1:-demo-out/report.html}
shot=${2:-${report%.html}.png}
[ -f "$report" ] || { echo "no $report: run bash scripts/demo.sh first" >&2; exit 1; }
if ! command -v chromium >/dev/null; then
  echo "screenshot-report: installing Debian's chromium" >&2
  apt-get install -y -q chromium >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q chromium >/dev/null; }
fi
profile=$(mktemp -d)
trap 'rm -rf "$profile"' EXIT
chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
  --disable-background-networking --disable-component-update --disable-sync \
  --user-data-dir="$profile" --hide-scrollbars --window-size=1200,3500 \
  --screenshot="$(realpath -m "$shot")" "file://$(realpath "$report")" 2>/dev/null
echo "wrote $shot"
