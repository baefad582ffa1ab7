#!/usr/bin/env bash
# Instructions per request of a server, counted by callgrind: deterministic for a given binary
# and request mix, so unlike wall-clock runs on this VM it needs no alternating rounds. The
# server runs under valgrind; loadtest/count_client.py sends N/4 requests of warm-up, the
# counters are zeroed, then N requests are counted (user space only: the kernel's TCP work is
# not in the figure). Prints the per-request figure and leaves the profile for
# callgrind_annotate (functions by instructions).
#
#   loadtest/callgrind.sh LABEL PATH N DEPTH -- SERVER-COMMAND...
#   B="target/release/bareapi serve --listen 127.0.0.1:0 --workers 1"
#   H="target/release/hyper-bare --listen 127.0.0.1:0 --workers 1"
#   loadtest/callgrind.sh bareapi /plaintext 20000 16 -- $B                    # pipelined
#   loadtest/callgrind.sh bareapi-noid /plaintext 20000 16 -- $B --no-request-id
#   loadtest/callgrind.sh floor /json 10000 1 -- $H
#   loadtest/callgrind.sh floor '/queries?queries=20' 1000 1 -- $H
#   TLS=1 loadtest/callgrind.sh bareapi-tls /json 10000 1 -- $B --tls-cert C --tls-key K
# (TLS=1: the client speaks HTTP/1.1 over TLS, for a server given a certificate.)
#
# Needs DATABASE_URL (a migrated database: bareapi migrate) for servers that connect at start;
# valgrind is installed with apt-get when missing and we are root. Profiles go to
# ${OUT:-target/callgrind}/LABEL.out.1. Only 127.0.0.1 is targeted; the run is bounded by N.
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 6 ] && [ "$5" = "--" ] || { sed -n '2,22p' "$0" >&2; exit 2; }
label=$1 path=$2 n=$3 depth=$4
shift 5
if ! command -v valgrind >/dev/null 2>&1; then
  [ "$(id -u)" -eq 0 ] || { echo "valgrind not found: apt-get install valgrind" >&2; exit 1; }
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq valgrind >/dev/null
fi
out_dir=${OUT:-target/callgrind}
mkdir -p "$out_dir"
out=$out_dir/$label.out log=$out_dir/$label.log
rm -f "$out" "$out".*
valgrind --tool=callgrind --callgrind-out-file="$out" "$@" >"$log" 2>&1 &
pid=$!
trap 'kill "$pid" 2>/dev/null || true' EXIT
addr=
for _ in $(seq 1 600); do
  addr=$(sed -n 's/.*listening addr=\([^ ]*\).*/\1/p' "$log" | head -n 1)
  [ -n "$addr" ] && break
  kill -0 "$pid" 2>/dev/null || break
  sleep 0.1
done
[ -n "$addr" ] || { cat "$log" >&2; echo "the server did not start" >&2; exit 1; }
python3 loadtest/count_client.py "$addr" "$path" $((n / 4 + 1)) "$depth" >/dev/null
callgrind_control --zero "$pid" >/dev/null 2>&1
python3 loadtest/count_client.py "$addr" "$path" "$n" "$depth" >/dev/null
callgrind_control --dump "$pid" >/dev/null 2>&1
kill -TERM "$pid"
wait "$pid" 2>/dev/null || true
trap - EXIT
total=$(awk '/^summary:/ {print $2; exit}' "$out.1")
echo "$label $path depth $depth: $((total / n)) instructions per request ($total over $n; profile $out.1)"
