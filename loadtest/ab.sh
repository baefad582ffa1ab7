#!/usr/bin/env bash
# Alternating A/B rounds: each SPEC is "label|command|route"; every round starts each command
# fresh on core 0, warms it up for 2 s, drives ROUTE with wrk (-t1 -c64) from core 1 for
# DURATION seconds, and prints requests/s, p99, server CPU per request (utime+stime of the
# server around the run) and the server's peak RSS. Alternating rounds of short runs are how
# this VM's ±15% drift is kept out of a comparison; take medians.
#
#   B="target/release/bareapi serve --listen 127.0.0.1:0 --no-migrate --workers 1"
#   A="target/release/axum-ref --listen 127.0.0.1:0 --workers 1"
#   loadtest/ab.sh 3 5 "bareapi|$B|/db" "axum|$A|/db"
#   loadtest/ab.sh 2 4 "s3|$B --shared-conns 3|/fortunes" "s4|$B|/fortunes"
#
# Commands must print `listening addr=IP:PORT` (bareapi and the reference servers do). Without
# DATABASE_URL a throwaway PostgreSQL is started and removed (loadtest/common.sh); build first
# (`cargo build --release --workspace`). Only 127.0.0.1 is targeted; every run is bounded.
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 3 ] || { sed -n '2,15p' "$0" >&2; exit 2; }
command -v wrk >/dev/null 2>&1 || { echo "wrk not found: loadtest/run.py or wrk-routes.sh installs it" >&2; exit 1; }
source loadtest/common.sh
rounds=$1 duration=$2
shift 2
tck=$(getconf CLK_TCK)
log=$(mktemp)
trap 'cleanup; rm -f "$log"' EXIT
for round in $(seq 1 "$rounds"); do
  for spec in "$@"; do
    label=${spec%%|*} rest=${spec#*|}
    cmd=${rest%%|*} route=${rest#*|}
    # shellcheck disable=SC2086 # the command is a word list on purpose
    taskset -c 0 $cmd >"$log" 2>&1 &
    server_pid=$!
    addr=
    for _ in $(seq 1 300); do
      addr=$(sed -n 's/.*listening addr=\([^ ]*\).*/\1/p' "$log" | head -n 1)
      [ -n "$addr" ] && break
      sleep 0.1
    done
    [ -n "$addr" ] || { cat "$log" >&2; exit 1; }
    taskset -c 1 wrk -t1 -c64 -d2s "http://$addr$route" >/dev/null
    c0=$(awk '{print $14+$15}' "/proc/$server_pid/stat")
    out=$(taskset -c 1 wrk -t1 -c64 -d"${duration}s" --latency "http://$addr$route")
    c1=$(awk '{print $14+$15}' "/proc/$server_pid/stat")
    hwm=$(awk '/VmHWM/ {print $2}' "/proc/$server_pid/status")
    n=$(echo "$out" | awk '/requests in/ {print $1}')
    rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
    p99=$(echo "$out" | awk '$1=="99%" {print $2}')
    us=$(python3 -c "print(round(($c1 - $c0) / $tck * 1e6 / $n, 2))")
    echo "round $round  $label  $route  req/s $rps  p99 $p99  CPU $us us/req  peak RSS $hwm KiB"
    kill "$server_pid"
    wait "$server_pid" 2>/dev/null || true
    server_pid=
  done
done
