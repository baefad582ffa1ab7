#!/usr/bin/env bash
# TLS against cleartext, bareapi against actix-web, in alternating rounds (as loadtest/ab.sh):
# every round starts each server once, in an order rotated by one each round, pinned to core 0,
# and drives it from core 1 with
#   - wrk -t1 -c64 (HTTP/1.1 keep-alive; Debian's wrk speaks https without ALPN, hence
#     HTTP/1.1 over TLS) on each route;
#   - h2load -t1 -c16 -m10 (HTTP/2: h2 by ALPN over TLS, h2c with prior knowledge in
#     cleartext, which only bareapi --http2 speaks) on each route;
#   - openssl s_time, with TLS servers only: full handshakes per second (-new) and resumed ones
#     (-reuse), each connection a handshake and one GET /plaintext (HTTP/1.0, then closed).
# Each result is the rate (requests or handshakes per second of wall clock) and the server's
# CPU per request or connection (utime+stime from /proc/PID/stat around the run, divided by the
# count). At the end: each (server, test)'s median over the rounds and, per test, the medians
# of its per-round ratios to the first server that ran that test.
#
#   loadtest/tls.sh ROUNDS SECONDS                  # e.g. loadtest/tls.sh 5 10
#   ROUTES="/json" WARMUP=1 loadtest/tls.sh 1 1     # a smoke run
#   BIN_DIR=/elsewhere/release loadtest/tls.sh 5 10  # binaries not in target/release
#   SERVERS="bareapi-tls actix-tls" loadtest/tls.sh 5 5   # only these (labels below)
#
# Servers (each skipped with a note if its binary is missing; build first with
# `cargo build --release --workspace`):
#   bareapi-tls     target/release/bareapi --tls-cert/--tls-key (rustls, ring)
#   bareapi-clear   target/release/bareapi --http2 (HTTP/1.1 and h2c on one port)
#   actix-tls       target/release/actix-ref --tls-cert/--tls-key (rustls, ring)
#   actix-clear     target/release/actix-ref (HTTP/1.1 only)
#   bareapi-awslc   $AWSLC_BIN --tls-cert/--tls-key, only when AWSLC_BIN names a bareapi built
#                   with `--features aws-lc` (the aws-lc-rs provider), e.g.
#                   cargo build --release --features aws-lc --target-dir target/awslc
#                   AWSLC_BIN=target/awslc/release/bareapi loadtest/tls.sh 5 10
#   EXTRA           "label|https|command" of your own, e.g. a bareapi built from a branch:
#                   EXTRA="variant|https|/tmp/v/bareapi serve --listen 127.0.0.1:0 --workers 1 TLS"
#                   (the word TLS is replaced with the --tls-cert/--tls-key flags)
#   HANDSHAKES_ONLY=1 skips the routes: only the s_time handshake tests run
# The certificate is made here (make_cert in common.sh: ECDSA P-256, localhost and 127.0.0.1).
# Without DATABASE_URL a throwaway PostgreSQL is started and removed (loadtest/common.sh); the
# first server of round 1 is bareapi, which makes its tables. wrk and h2load are installed
# with apt-get when missing. Only 127.0.0.1 is targeted; every run is bounded.
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -eq 2 ] || { sed -n '2,38p' "$0" >&2; exit 2; }
rounds=$1 duration=$2
routes=(${ROUTES:-/plaintext /json /db})
warmup=${WARMUP:-2}

need() {
  local cmd=$1 package=$2
  command -v "$cmd" >/dev/null 2>&1 && return 0
  echo "installing $package (apt-get install $package) for $cmd" >&2
  apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$package" >/dev/null
}
need wrk wrk
need h2load nghttp2-client
need openssl openssl

source loadtest/common.sh
work=$(mktemp -d "${TMPDIR:-/tmp}/bareapi-tls-load.XXXXXX")
trap 'cleanup; rm -rf "$work"' EXIT
make_cert "$work"
tls_flags="--tls-cert $work/cert.pem --tls-key $work/key.pem"

bin_dir=${BIN_DIR:-target/release}
B="$bin_dir/bareapi serve --listen 127.0.0.1:0 --workers 1"
X="$bin_dir/actix-ref --listen 127.0.0.1:0 --workers 1"
# label|scheme|command
specs=("bareapi-tls|https|$B $tls_flags" "bareapi-clear|http|$B --http2"
       "actix-tls|https|$X $tls_flags" "actix-clear|http|$X")
if [ -n "${AWSLC_BIN:-}" ]; then
  specs+=("bareapi-awslc|https|$AWSLC_BIN serve --listen 127.0.0.1:0 --workers 1 $tls_flags")
fi
if [ -n "${EXTRA:-}" ]; then
  specs+=("${EXTRA/ TLS/ $tls_flags}")
fi
if [ "${HANDSHAKES_ONLY:-0}" = 1 ]; then routes=(); fi
if [ -n "${SERVERS:-}" ]; then
  kept=()
  for spec in "${specs[@]}"; do
    case " $SERVERS " in *" ${spec%%|*} "*) kept+=("$spec") ;; esac
  done
  [ ${#kept[@]} -gt 0 ] || { echo "SERVERS=$SERVERS names none of the servers" >&2; exit 2; }
  specs=("${kept[@]}")
fi
for spec in "${specs[@]}"; do
  bin=$(echo "$spec" | cut -d'|' -f3 | cut -d' ' -f1)
  [ -x "$bin" ] || { echo "missing $bin: build it first (see the top of $0)" >&2; exit 1; }
done

# measure_h2 URL SECONDS: h2load from core ${LOAD_CORE:-1}; sets rps and cpu_us.
measure_h2() {
  local url=$1 seconds=$2 c0 c1 out n
  c0=$(cpu_ticks)
  out=$(taskset -c "${LOAD_CORE:-1}" h2load -t1 -c16 -m10 -D "$seconds" "$url" 2>&1)
  c1=$(cpu_ticks)
  n=$(echo "$out" | awk '/^requests:/ {print $8}')
  rps=$(echo "$out" | awk '/^finished in/ {print $4}')
  if [ -z "$n" ] || [ "$n" = 0 ]; then echo "h2load got no answers from $url:" >&2; echo "$out" >&2; exit 1; fi
  cpu_us=$(python3 -c "print(round(($c1 - $c0) / $(getconf CLK_TCK) * 1e6 / $n, 2))")
}

# measure_handshakes MODE SECONDS (MODE -new or -reuse): openssl s_time from core 1 against
# $addr, each connection a handshake and one `GET /plaintext` (HTTP/1.0, then closed): without
# reading an answer s_time never gets TLS 1.3's session tickets, and -reuse would resume
# nothing. Sets rps (connections per second of wall clock, timed here: s_time's own count of
# seconds is whole seconds) and cpu_us (server CPU per connection); exits if -reuse resumed
# fewer than 90% of its connections (s_time prints `r` for each one resumed, `*` for a full one).
measure_handshakes() {
  local mode=$1 seconds=$2 c0 c1 t0 t1 out n marks reused
  c0=$(cpu_ticks)
  t0=$(date +%s.%N)
  out=$(taskset -c "${LOAD_CORE:-1}" openssl s_time -connect "$addr" "$mode" -time "$seconds" -www /plaintext 2>&1 </dev/null)
  t1=$(date +%s.%N)
  c1=$(cpu_ticks)
  n=$(echo "$out" | sed -n 's/^\([0-9]*\) connections in [0-9.]* real seconds.*/\1/p' | tail -n 1)
  if [ -z "$n" ] || [ "$n" = 0 ]; then echo "s_time $mode made no connection to $addr:" >&2; echo "$out" >&2; exit 1; fi
  if [ "$mode" = -reuse ]; then
    marks=$(echo "$out" | grep -E '^[*r]+$' | tr -d '\n' || true)
    reused=$(echo -n "$marks" | tr -cd r | wc -c)
    if [ $((reused * 10)) -lt $((${#marks} * 9)) ]; then
      echo "s_time -reuse against $addr resumed only $reused of ${#marks} connections" >&2; exit 1
    fi
  fi
  rps=$(python3 -c "print(round($n / ($t1 - $t0), 1))")
  cpu_us=$(python3 -c "print(round(($c1 - $c0) / $(getconf CLK_TCK) * 1e6 / $n, 2))")
}

log=$work/server.log
results=$work/results
n=${#specs[@]}
for round in $(seq 1 "$rounds"); do
  for i in $(seq 0 $((n - 1))); do
    spec=${specs[$(((round - 1 + i) % n))]}
    label=$(echo "$spec" | cut -d'|' -f1) scheme=$(echo "$spec" | cut -d'|' -f2) cmd=$(echo "$spec" | cut -d'|' -f3)
    # The log exists before start_command first reads it (its sed would fail the script).
    : >"$log"
    # shellcheck disable=SC2086 # the command is a word list on purpose
    start_command 0 "$log" $cmd
    for route in "${routes[@]}"; do
      url="$scheme://$addr$route"
      taskset -c "${LOAD_CORE:-1}" wrk -t1 -c64 -d"${warmup}s" "$url" >/dev/null
      measure "$url" "$duration"
      printf '%s\t%s\t%s\t%s\t%s\n' "$round" "$label" "h1 $route" "$rps" "$cpu_us" >>"$results"
      echo "round $round  $label  HTTP/1.1 $route  req/s $rps  p99 $p99  CPU $cpu_us us/req"
      if [ "$label" = actix-clear ]; then continue; fi  # no h2c
      measure_h2 "$url" "$duration"
      printf '%s\t%s\t%s\t%s\t%s\n' "$round" "$label" "h2 $route" "$rps" "$cpu_us" >>"$results"
      echo "round $round  $label  HTTP/2 $route  req/s $rps  CPU $cpu_us us/req"
    done
    if [ "$scheme" = https ]; then
      for mode in -new -reuse; do
        measure_handshakes "$mode" "$duration"
        printf '%s\t%s\t%s\t%s\t%s\n' "$round" "$label" "handshake $mode" "$rps" "$cpu_us" >>"$results"
        echo "round $round  $label  handshakes $mode  per s $rps  CPU $cpu_us us/handshake"
      done
    fi
    stop_server
  done
done

python3 - "$results" "${specs[@]%%|*}" <<'EOF'
import statistics
import sys

path, labels = sys.argv[1], list(dict.fromkeys(sys.argv[2:]))
rows = {}  # (test, label, round) -> (rate, CPU us)
for line in open(path):
    rnd, label, test, rate, cpu = line.rstrip("\n").split("\t")
    rows[(test, label, int(rnd))] = (float(rate), float(cpu))
tests = list(dict.fromkeys(t for t, _, _ in rows))
rounds = sorted({r for _, _, r in rows})
print(f"\nmedians over {len(rounds)} round{'s' if len(rounds) != 1 else ''} (rate: req/s, or handshakes/s):")
width = max(len(label) for label in labels)
for test in tests:
    print(f"  {test}")
    present = [label for label in labels if any((test, label, r) in rows for r in rounds)]
    base = present[0]
    for label in present:
        mine = [rows[(test, label, r)] for r in rounds if (test, label, r) in rows]
        line = (f"    {label:{width}}  rate {statistics.median(x[0] for x in mine):10.0f}  "
                f"CPU {statistics.median(x[1] for x in mine):8.2f} us")
        if label != base:
            both = [(rows[(test, label, r)], rows[(test, base, r)]) for r in rounds
                    if (test, label, r) in rows and (test, base, r) in rows]
            rate = [a[0] / b[0] for a, b in both if b[0]]
            cpu = [a[1] / b[1] for a, b in both if b[1]]
            if rate:
                line += f"  vs {base}: rate {statistics.median(rate):.3f}x ({min(rate):.3f}..{max(rate):.3f})"
            if cpu:
                line += f"  CPU {statistics.median(cpu):.3f}x ({min(cpu):.3f}..{max(cpu):.3f})"
        print(line)
EOF
