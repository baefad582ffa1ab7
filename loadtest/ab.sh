#!/usr/bin/env bash
# Alternating A/B rounds: each SPEC is "label|command|route"; every round starts each command
# fresh on core 0, warms it up for 2 s, drives ROUTE with wrk (-t1 -c64) from core 1 for
# DURATION seconds, and prints requests/s, p99, server CPU per request (utime+stime of the
# server around the run) and the server's peak RSS. Alternating rounds of short runs are how
# this VM's ±15% drift is kept out of a comparison; take medians.
#
#   B="target/release/bareapi serve --listen 127.0.0.1:0 --workers 1"   # migrates the fresh cluster
#   A="target/release/axum-ref --listen 127.0.0.1:0 --workers 1"
#   X="target/release/actix-ref --listen 127.0.0.1:0 --workers 1"
#   loadtest/ab.sh 3 5 "bareapi|$B|/db" "axum|$A|/db"
#   DEPTH=16 loadtest/ab.sh 3 5 "bareapi|$B|/plaintext" "actix|$X|/plaintext"   # pipelined
#   loadtest/ab.sh 2 4 "s3|$B --shared-conns 3|/fortunes" "s4|$B|/fortunes"
#
# Commands must print `listening addr=IP:PORT` (bareapi and the reference servers do). Without
# DATABASE_URL a throwaway PostgreSQL is started and removed (loadtest/common.sh); build first
# (`cargo build --release --workspace`). Only 127.0.0.1 is targeted; every run is bounded.
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 3 ] || { sed -n '2,17p' "$0" >&2; exit 2; }
command -v wrk >/dev/null 2>&1 || { echo "wrk not found: loadtest/run.py or wrk-routes.sh installs it" >&2; exit 1; }
source loadtest/common.sh
rounds=$1 duration=$2
shift 2
log=$(mktemp)
trap 'cleanup; rm -f "$log"' EXIT
for round in $(seq 1 "$rounds"); do
  for spec in "$@"; do
    label=${spec%%|*} rest=${spec#*|}
    cmd=${rest%%|*} route=${rest#*|}
    # shellcheck disable=SC2086 # the command is a word list on purpose
    start_command 0 "$log" $cmd
    taskset -c 1 wrk -t1 -c64 -d2s "http://$addr$route" >/dev/null
    measure "http://$addr$route" "$duration"
    echo "round $round  $label  $route  req/s $rps  p99 $p99  CPU $cpu_us us/req  peak RSS $hwm_kib KiB"
    stop_server
  done
done
