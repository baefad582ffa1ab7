#!/usr/bin/env bash
# Alternating A/B rounds: each SPEC is "label|command|route"; every round starts each command
# fresh on core 0, warms it up for 2 s, drives ROUTE with wrk (-t1 -c64) from core 1 for
# DURATION seconds, and prints requests/s, p99, server CPU per request (utime+stime of the
# server around the run) and the server's peak RSS. The order rotates: round 1 starts at the
# first spec, round 2 at the second, and so on (round r at spec (r-1) mod n), as loadtest/run.py
# does. Alternating rounds of short runs are how this VM's ±15% drift is kept out of a
# comparison: at the end it prints each label's median req/s and CPU/req over the rounds and,
# for every label after the first, the medians of its per-round ratios to the first label.
#
#   B="target/release/bareapi serve --listen 127.0.0.1:0 --workers 1"   # migrates the fresh cluster
#   H="target/release/hyper-bare --listen 127.0.0.1:0 --workers 1"      # the floor; does not migrate
#   A="target/release/axum-ref --listen 127.0.0.1:0 --workers 1"
#   X="target/release/actix-ref --listen 127.0.0.1:0 --workers 1"
#   loadtest/ab.sh 3 5 "bareapi|$B|/db" "axum|$A|/db"
#   loadtest/ab.sh 5 5 "bareapi|$B|/queries?queries=20" "hyper-bare|$H|/queries?queries=20"
#   DEPTH=16 loadtest/ab.sh 3 5 "bareapi|$B|/plaintext" "actix|$X|/plaintext"   # pipelined
#   HEADER="Authorization: Bearer $TOKEN" loadtest/ab.sh 3 4 "bareapi|$B|/api/users?ids=1,2" "actix|$X|/api/users?ids=1,2"
#   loadtest/ab.sh 2 4 "s3|$B --shared-conns 3|/fortunes" "s4|$B|/fortunes"
#
# Commands must print `listening addr=IP:PORT` (bareapi and the reference servers do). Without
# DATABASE_URL a throwaway PostgreSQL is started and removed (loadtest/common.sh); its tables
# are made by the first bareapi to start, so list bareapi first when hyper-bare, axum-ref or
# actix-ref are compared on a fresh cluster. Build first (`cargo build --release --workspace`).
# Only 127.0.0.1 is targeted; every run is bounded.
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 3 ] || { sed -n '2,25p' "$0" >&2; exit 2; }
command -v wrk >/dev/null 2>&1 || { echo "wrk not found: loadtest/run.py or wrk-routes.sh installs it" >&2; exit 1; }
source loadtest/common.sh
rounds=$1 duration=$2
shift 2
specs=("$@")
n=${#specs[@]}
log=$(mktemp)
results=$(mktemp)
trap 'cleanup; rm -f "$log" "$results"' EXIT
for round in $(seq 1 "$rounds"); do
  for i in $(seq 0 $((n - 1))); do
    pick_spec "$round" "$i" "${specs[@]}"
    # shellcheck disable=SC2086 # the command is a word list on purpose
    start_command 0 "$log" $cmd
    taskset -c 1 wrk -t1 -c64 -d2s ${HEADER:+-H "$HEADER"} "http://$addr$route" >/dev/null
    measure "http://$addr$route" "$duration"
    echo "round $round  $label  $route  req/s $rps  p99 $p99  CPU $cpu_us us/req  peak RSS $hwm_kib KiB"
    printf '%s\t%s\t%s\t%s\n' "$round" "$label" "$rps" "$cpu_us" >>"$results"
    stop_server
  done
done

# Medians over the rounds, and medians of the per-round ratios to the first spec's label.
first=${specs[0]%%|*}
python3 - "$results" "$first" "${specs[@]%%|*}" <<'EOF'
import statistics
import sys

path, first, labels = sys.argv[1], sys.argv[2], list(dict.fromkeys(sys.argv[3:]))
rows = {}  # (label, round) -> (req/s, CPU us/req)
for line in open(path):
    rnd, label, rps, cpu = line.rstrip("\n").split("\t")
    rows[(label, int(rnd))] = (float(rps), float(cpu))
rounds = sorted({r for _, r in rows})
print(f"\nmedians over {len(rounds)} round{'s' if len(rounds) != 1 else ''}:")
width = max(len(label) for label in labels)
for label in labels:
    mine = [rows[(label, r)] for r in rounds if (label, r) in rows]
    line = (f"  {label:{width}}  req/s {statistics.median(x[0] for x in mine):10.0f}  "
            f"CPU {statistics.median(x[1] for x in mine):7.2f} us/req")
    if label != first:
        both = [(rows[(label, r)], rows[(first, r)]) for r in rounds if (label, r) in rows and (first, r) in rows]
        rps = [a[0] / b[0] for a, b in both if b[0]]
        cpu = [a[1] / b[1] for a, b in both if b[1]]
        if rps:
            line += f"  vs {first}: req/s {statistics.median(rps):.3f}x ({min(rps):.3f}..{max(rps):.3f})"
        if cpu:
            line += f"  CPU/req {statistics.median(cpu):.3f}x ({min(cpu):.3f}..{max(cpu):.3f})"
    print(line)
EOF
