#!/usr/bin/env bash
# Run a command and report its wall time and peak anonymous and file-backed resident
# memory (sampled from /proc/PID/status every 20 ms), as BENCHMARKS.md records them:
#   bash scripts/peak-mem.sh CMD [ARGS...]      (the report goes to stderr)
set -uo pipefail
t0=$(date +%s.%N)
"$@" &
pid=$!
anon=0
file=0
while kill -0 "$pid" 2> /dev/null; do
  if read -r a f < <(awk '/^RssAnon/ {a=$2} /^RssFile/ {f=$2} END {print a+0, f+0}' "/proc/$pid/status" 2> /dev/null); then
    [ "$a" -gt "$anon" ] && anon=$a
    [ "$f" -gt "$file" ] && file=$f
  fi
  sleep 0.02
done
wait "$pid"
rc=$?
t1=$(date +%s.%N)
printf 'peak-mem: %.1f s wall, peak RssAnon %d MiB, peak RssFile %d MiB, exit %d\n' \
  "$(echo "$t1 - $t0" | bc)" $((anon / 1024)) $((file / 1024)) "$rc" >&2
exit "$rc"
