#!/usr/bin/env bash
# /plaintext throughput, p99 and server CPU per request with and without a sustained slowloris
# (loadtest/slowclient: RATE new slow-header connections a second), alternating, for bareapi and
# the actix-web reference under the same harness. Server on core 0; wrk and the slow-client
# generator share core 1 (this is a 2-core machine; see BENCHMARKS.md for what that does to p99).
#
#   loadtest/slowloris-ab.sh                              # 2 rounds, 20 s runs, both servers
#   ROUNDS=3 DURATION=60 SERVERS=bareapi loadtest/slowloris-ab.sh
#
# Bounded: every run stops after DURATION seconds; only 127.0.0.1 is targeted.
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-2}
DURATION=${DURATION:-20}
SERVERS=${SERVERS:-bareapi actix}
RATE=${RATE:-200}

command -v wrk >/dev/null 2>&1 || { echo "wrk not found: loadtest/wrk-routes.sh or run.py installs it" >&2; exit 1; }
cargo build --release --quiet -p bareapi -p actix-ref -p slowclient
source loadtest/common.sh   # throwaway PostgreSQL unless DATABASE_URL is set; cleanup on exit

log=$(mktemp)
slow_log=$(mktemp)
trap 'cleanup; rm -f "$log" "$slow_log"' EXIT
for round in $(seq 1 "$ROUNDS"); do
  for srv in $SERVERS; do
    case $srv in
      bareapi) start_server 0 "$log" --no-migrate --workers 1 ;;
      actix) start_command 0 "$log" target/release/actix-ref --listen 127.0.0.1:0 --workers 1 ;;
      *) echo "unknown server $srv" >&2; exit 1 ;;
    esac
    taskset -c 1 wrk -t1 -c64 -d3s "http://$addr/plaintext" >/dev/null
    for mode in base slow; do
      if [ "$mode" = slow ]; then
        taskset -c 1 target/release/slowclient "$addr" --rate "$RATE" --seconds $((DURATION + 7)) >"$slow_log" 2>&1 &
        slow_pid=$!
        sleep 5   # slow connections live ~4 s: reach the steady state first
      fi
      measure "http://$addr/plaintext" "$DURATION"
      echo "round $round  $srv  $mode  req/s $rps  p99 $p99  server CPU $cpu_us us/req"
      if [ "$mode" = slow ]; then
        wait "$slow_pid"
        grep "slow connections opened" "$slow_log" | sed 's/^/    /'
      fi
    done
    stop_server
  done
done
