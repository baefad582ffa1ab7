#!/usr/bin/env bash
# Where a server's CPU per request goes, user space against the kernel, and how many system
# calls a request costs, in alternating rounds (as loadtest/ab.sh: each SPEC is
# "label|command|route", started fresh on core 0 each round, the order rotated, wrk -t1 -c64
# from core 1 after 2 s of warm-up). Per round and server it prints requests/s, user and system
# CPU per request (utime and stime from /proc/PID/stat over SECONDS of wrk), then attaches
# `strace -c -f` for 3 s more of wrk and prints system calls per request and the top of
# strace's table (strace slows the server, so its request count is its own; the calls per
# request stand).
#
#   B="target/release/bareapi serve --listen 127.0.0.1:0 --workers 1"
#   A="target/release/axum-ref --listen 127.0.0.1:0 --workers 1"
#   loadtest/syscalls.sh 3 5 "bareapi|$B|/updates?queries=20" "axum|$A|/updates?queries=20"
#
# Without DATABASE_URL a throwaway PostgreSQL is started and removed (loadtest/common.sh); list
# bareapi first on a fresh cluster (it makes the tables). strace is installed with apt-get when
# missing. Only 127.0.0.1 is targeted; every run is bounded.
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 3 ] || { sed -n '2,17p' "$0" >&2; exit 2; }
command -v wrk >/dev/null 2>&1 || { echo "wrk not found: loadtest/run.py or wrk-routes.sh installs it" >&2; exit 1; }
if ! command -v strace >/dev/null 2>&1; then
  apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq strace >/dev/null
fi
source loadtest/common.sh
rounds=$1 duration=$2
shift 2
specs=("$@")
n=${#specs[@]}
work=$(mktemp -d "${TMPDIR:-/tmp}/bareapi-syscalls.XXXXXX")
trap 'cleanup; rm -rf "$work"' EXIT
ticks=$(getconf CLK_TCK)
for round in $(seq 1 "$rounds"); do
  for i in $(seq 0 $((n - 1))); do
    pick_spec "$round" "$i" "${specs[@]}"
    # shellcheck disable=SC2086 # the command is a word list on purpose
    start_command 0 "$work/log" $cmd
    url="http://$addr$route"
    taskset -c 1 wrk -t1 -c64 -d2s "$url" >/dev/null
    read -r u0 s0 < <(awk '{print $14, $15}' "/proc/$server_pid/stat")
    out=$(taskset -c 1 wrk -t1 -c64 -d"${duration}s" "$url")
    read -r u1 s1 < <(awk '{print $14, $15}' "/proc/$server_pid/stat")
    requests=$(echo "$out" | awk '/requests in/ {print $1}')
    strace -c -f -p "$server_pid" -o "$work/strace" 2>/dev/null &
    tracer=$!
    sleep 0.5
    traced=$(taskset -c 1 wrk -t1 -c64 -d3s "$url" | awk '/requests in/ {print $1}')
    kill -INT "$tracer"
    wait "$tracer" 2>/dev/null || true
    calls=$(awk '$NF=="total" {print $4}' "$work/strace")
    python3 - "$label" "$round" "$requests" "$duration" "$u0" "$u1" "$s0" "$s1" "$ticks" "$calls" "$traced" "$work/strace" <<'PY'
import sys
label, rnd, n, secs, u0, u1, s0, s1, ticks, calls, traced, table = sys.argv[1:]
n, ticks, traced = int(n), int(ticks), int(traced)
per = lambda a, b: (int(b) - int(a)) / ticks * 1e6 / n
top = []
for line in open(table):
    f = line.split()
    if len(f) >= 5 and f[0][0].isdigit() and f[-1] != "total":
        top.append(f"{f[-1]} {int(f[3]) / traced:.2f}")
print(f"round {rnd}  {label}  req/s {n / float(secs):.0f}  user {per(u0, u1):.1f} us  system {per(s0, s1):.1f} us"
      f" per request;  system calls per request {int(calls) / traced:.2f}: {', '.join(top[:5])}")
PY
    stop_server
  done
done
