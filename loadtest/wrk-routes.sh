#!/usr/bin/env bash
# Quick wrk matrix: the TechEmpower routes in each runtime mode, server pinned to core 0 and
# wrk to core 1 (PostgreSQL unpinned), and a markdown table of requests/s and p99 latency.
#
#   loadtest/wrk-routes.sh                      # both runtimes, 64 connections, 10 s a route
#   DURATION=3s CONNS=128 MODES=per-core loadtest/wrk-routes.sh
#   SERVER_FLAGS="--db-mode checkout" loadtest/wrk-routes.sh
#   ROUTES="/db /fortunes" loadtest/wrk-routes.sh
#
# Without DATABASE_URL a throwaway PostgreSQL cluster is started (durable settings, except
# synchronous_commit=off) and removed afterwards. Only 127.0.0.1 is targeted; every wrk run is
# bounded by DURATION.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10s}
CONNS=${CONNS:-64}
MODES=${MODES:-per-core multi-thread}
ROUTES=${ROUTES:-/plaintext /json /db /queries?queries=20 /fortunes /updates?queries=20 /cached-queries?count=20}
SERVER_FLAGS=${SERVER_FLAGS:-}
SERVER_CORE=${SERVER_CORE:-0}
LOAD_CORE=${LOAD_CORE:-1}

if ! command -v wrk >/dev/null 2>&1; then
  [ "$(id -u)" -eq 0 ] || { echo "wrk not found: install it (apt-get install wrk)" >&2; exit 1; }
  DEBIAN_FRONTEND=noninteractive apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null
fi

cargo build --release --quiet

# shellcheck source=loadtest/common.sh
. loadtest/common.sh

# wrk prints latencies as 812.00us, 1.23ms or 1.05s: convert to milliseconds.
to_ms() {
  awk -v v="$1" 'BEGIN {
    if (v ~ /us$/) { sub(/us$/, "", v); printf "%.3f", v / 1000 }
    else if (v ~ /ms$/) { sub(/ms$/, "", v); printf "%.3f", v }
    else if (v ~ /s$/) { sub(/s$/, "", v); printf "%.3f", v * 1000 }
    else { printf "%s", v } }'
}

echo "| runtime | route | requests/s | p99 (ms) | non-2xx/errors |"
echo "|---|---|---:|---:|---|"
for mode in $MODES; do
  log=$(mktemp)
  # shellcheck disable=SC2086
  start_server "$SERVER_CORE" "$log" --runtime "$mode" $SERVER_FLAGS
  for route in $ROUTES; do
    url="http://$addr$route"
    taskset -c "$LOAD_CORE" wrk -t1 -c"$CONNS" -d2s "$url" >/dev/null   # warm-up
    out=$(taskset -c "$LOAD_CORE" wrk -t1 -c"$CONNS" -d"$DURATION" --latency "$url")
    rps=$(echo "$out" | awk '/^Requests\/sec:/ { printf "%.0f", $2 }')
    p99=$(echo "$out" | awk '$1 == "99%" { print $2 }')
    bad=$(echo "$out" | awk '/Non-2xx|Socket errors/ { sub(/^ +/, ""); printf "%s; ", $0 }')
    echo "| $mode | $route | $rps | $(to_ms "$p99") | ${bad:-none} |"
  done
  kill "$server_pid"; wait "$server_pid" 2>/dev/null || true; server_pid=
  rm -f "$log"
done
