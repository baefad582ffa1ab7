#!/usr/bin/env bash
# Normal traffic during a flood of TLS handshakes (issue #15): does a worker busy with new
# connections' key exchanges and signatures keep answering the connections it already serves?
# bareapi with TLS, one worker on core 0; from core 1, oha sends /json at a fixed rate over
# HTTP/1.1 keep-alive connections (open loop, latency-corrected), quiet and then (or first,
# alternating by round) with FLOODERS `openssl s_time -new` processes beside it, each opening
# connection after connection, every one a full handshake and one `GET /plaintext`. The
# flooders run at nice 10, so that oha, which measures, keeps its share of core 1. Each run
# prints oha's achieved rate, p50 and p99, the server's CPU per second of run, and the full
# handshakes the server completed per second (from its bareapi_tls_handshakes_total).
#
#   loadtest/tls_flood.sh ROUNDS SECONDS            # e.g. loadtest/tls_flood.sh 3 5
#   RATE=20000 FLOODERS=4 loadtest/tls_flood.sh 3 5 # defaults: RATE=10000, FLOODERS=2
#
# Without DATABASE_URL a throwaway PostgreSQL is started and removed (loadtest/common.sh).
# Needs target/release/bareapi, oha (`cargo install oha --locked`), openssl and curl. Only
# 127.0.0.1 is targeted; every run is bounded.
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -eq 2 ] || { sed -n '2,18p' "$0" >&2; exit 2; }
rounds=$1 duration=$2
rate=${RATE:-10000} flooders=${FLOODERS:-2} load_core=${LOAD_CORE:-1}
command -v oha >/dev/null 2>&1 || { echo "oha not found: cargo install oha --locked" >&2; exit 1; }
for tool in openssl curl; do command -v "$tool" >/dev/null 2>&1 || { echo "$tool not found" >&2; exit 1; }; done

source loadtest/common.sh
work=$(mktemp -d "${TMPDIR:-/tmp}/bareapi-tls-flood.XXXXXX")
flood_pids=()
stop_flood() {
  for pid in "${flood_pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${flood_pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  flood_pids=()
}
trap 'stop_flood; cleanup; rm -rf "$work"' EXIT
make_cert "$work"

# Full handshakes the server has completed (every protocol; all are full here).
handshakes() {
  curl -sk "https://$addr/metrics" | awk '/^bareapi_tls_handshakes_total\{.*kind="full"/ {n += $2} END {print n + 0}'
}

# run KIND: one oha run (KIND quiet or flood), its line appended to $work/results.
run() {
  local kind=$1 h0 h1 c0 c1 out
  if [ "$kind" = flood ]; then
    for _ in $(seq 1 "$flooders"); do
      # `-time` well past the run: the flooders are stopped when oha is done.
      taskset -c "$load_core" nice -n 10 openssl s_time -connect "$addr" -new -time $((duration + 30)) \
        -www /plaintext >/dev/null 2>&1 </dev/null &
      flood_pids+=($!)
    done
    sleep 1
  fi
  h0=$(handshakes) c0=$(cpu_ticks)
  out=$(taskset -c "$load_core" oha --no-tui --output-format json --insecure -z "${duration}s" -c 32 \
    -q "$rate" --latency-correction "https://$addr/json")
  c1=$(cpu_ticks) h1=$(handshakes)
  stop_flood
  python3 - "$kind" "$round" "$duration" "$h0" "$h1" "$c0" "$c1" "$(getconf CLK_TCK)" "$out" >>"$work/results" <<'EOF'
import json, sys
kind, rnd, secs, h0, h1, c0, c1, tck, out = sys.argv[1:]
o = json.loads(out)
codes = o.get("statusCodeDistribution", {})
bad = sum(v for k, v in codes.items() if not k.startswith("2"))
errors = sum(v for k, v in o.get("errorDistribution", {}).items() if "deadline" not in k)
p = o["latencyPercentiles"]
print("\t".join(str(x) for x in [
    rnd, kind, round(o["summary"]["requestsPerSec"]), round(p["p50"] * 1e3, 3), round(p["p99"] * 1e3, 3),
    round((int(h1) - int(h0)) / float(secs)), round((float(c1) - float(c0)) / float(tck) / float(secs), 2),
    bad + errors]))
EOF
  tail -n 1 "$work/results" | awk -F'\t' '{printf "round %s  %-5s  /json at %s/s: achieved %s/s  p50 %s ms  p99 %s ms  full handshakes %s/s  server CPU %s s/s  failed %s\n", $1, $2, "'"$rate"'", $3, $4, $5, $6, $7, $8}'
}

for round in $(seq 1 "$rounds"); do
  : >"$work/server.log"
  start_command 0 "$work/server.log" target/release/bareapi serve --listen 127.0.0.1:0 --workers 1 \
    --tls-cert "$work/cert.pem" --tls-key "$work/key.pem"
  # Warm-up: the keep-alive connections' own handshakes, the database connections.
  taskset -c "$load_core" oha --no-tui --insecure -z 1s -c 32 -q "$rate" "https://$addr/json" >/dev/null
  if [ $((round % 2)) -eq 1 ]; then run quiet; run flood; else run flood; run quiet; fi
  stop_server
done

python3 - "$work/results" <<'EOF'
import statistics, sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1])]
by = {(r[0], r[1]): r for r in rows}
rounds = sorted({r[0] for r in rows}, key=int)
def med(kind, i):
    return statistics.median(float(by[(r, kind)][i]) for r in rounds)
print(f"\nmedians over {len(rounds)} rounds:")
for kind in ("quiet", "flood"):
    print(f"  {kind:5}  achieved {med(kind, 2):9.0f}/s  p50 {med(kind, 3):7.3f} ms  p99 {med(kind, 4):7.3f} ms  "
          f"full handshakes {med(kind, 5):6.0f}/s  server CPU {med(kind, 6):.2f} s/s")
for i, name in ((2, "achieved rate"), (3, "p50"), (4, "p99")):
    ratios = [float(by[(r, "flood")][i]) / float(by[(r, "quiet")][i]) for r in rounds]
    print(f"  flood / quiet {name}: {statistics.median(ratios):.2f}x ({min(ratios):.2f}..{max(ratios):.2f})")
EOF
