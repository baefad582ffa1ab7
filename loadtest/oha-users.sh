#!/usr/bin/env bash
# oha against the users API reads: GET /api/users/{id} and the batch GET of 20 ids, each with
# and without `Accept-Encoding: gzip`. Server pinned to core 0, oha to core 1, 127.0.0.1 only,
# every run bounded by DURATION. Prints a markdown table of requests/s and p50/p99 latency.
#
#   loadtest/oha-users.sh                    # 64 connections, 10 s per scenario
#   DURATION=3s CONNS=32 loadtest/oha-users.sh
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10s}
CONNS=${CONNS:-64}
SERVER_CORE=${SERVER_CORE:-0}
LOAD_CORE=${LOAD_CORE:-1}

if ! command -v oha >/dev/null 2>&1; then
  echo "oha not found: installing it (cargo install oha --locked)" >&2
  cargo install oha --locked --quiet
fi
cargo build --release --quiet

# shellcheck source=loadtest/common.sh
. loadtest/common.sh

log=$(mktemp)
start_server "$SERVER_CORE" "$log"
base="http://$addr"

# Twenty users with long-ish names (so a batch of 20 is well over the 1 KiB gzip threshold).
stamp=$(date +%s%N)
ids=()
for i in $(seq 1 20); do
  body="{\"email\":\"load-$stamp-$i@example.com\",\"password\":\"load test password\",\"name\":\"Load Test User Number $i\"}"
  id=$(curl -sf -X POST -H 'Content-Type: application/json' -d "$body" "$base/api/users" | sed -n 's/.*"id":\([0-9]*\).*/\1/p')
  ids+=("$id")
done
token=$(curl -sf -X POST -H 'Content-Type: application/json' \
  -d "{\"email\":\"load-$stamp-1@example.com\",\"password\":\"load test password\"}" "$base/api/sessions" \
  | sed -n 's/.*"token":"\([^"]*\)".*/\1/p')
batch=$(IFS=,; echo "${ids[*]}")

run() { # name url [extra header]
  local name=$1 url=$2; shift 2
  local out
  taskset -c "$LOAD_CORE" oha --no-tui -z 2s -c "$CONNS" -H "Authorization: Bearer $token" "$@" "$url" >/dev/null
  out=$(taskset -c "$LOAD_CORE" oha --no-tui --output-format json -z "$DURATION" -c "$CONNS" \
    -H "Authorization: Bearer $token" "$@" "$url")
  python3 - "$name" "$out" <<'PY'
import json, sys
name, raw = sys.argv[1], sys.argv[2]
d = json.loads(raw)
s, p = d["summary"], d["latencyPercentiles"]
codes = d.get("statusCodeDistribution", {})
print(f"| {name} | {s['requestsPerSec']:.0f} | {p['p50'] * 1000:.3f} | {p['p99'] * 1000:.3f} | {codes} |")
PY
}

echo "| scenario | requests/s | p50 (ms) | p99 (ms) | status codes |"
echo "|---|---:|---:|---:|---|"
run "GET /api/users/{id}" "$base/api/users/${ids[0]}"
run "GET /api/users/{id}, Accept-Encoding: gzip" "$base/api/users/${ids[0]}" -H "Accept-Encoding: gzip"
run "GET /api/users?ids= (20 ids)" "$base/api/users?ids=$batch"
run "GET /api/users?ids= (20 ids), Accept-Encoding: gzip" "$base/api/users?ids=$batch" -H "Accept-Encoding: gzip"
rm -f "$log"
