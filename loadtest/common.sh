# Shared by the loadtest/*.sh scripts (sourced from the repository root):
# a throwaway PostgreSQL unless DATABASE_URL is set, cleanup on exit, and starting the server
# pinned to a core and waiting for its `listening addr=` line.

server_pid=
pgdir=
cleanup() {
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null || true
  if [ -n "$pgdir" ]; then scripts/pg.sh stop "$pgdir"; rm -rf "$pgdir"; fi
}
trap cleanup EXIT

if [ -z "${DATABASE_URL:-}" ]; then
  pgdir=$(mktemp -d "${TMPDIR:-/tmp}/bareapi-load-pg.XXXXXX")
  DATABASE_URL=$(scripts/pg.sh start "$pgdir" "$(scripts/pg.sh free-port)")
  export DATABASE_URL
fi

# start_command CORE LOGFILE CMD...: starts CMD (any server that prints `listening addr=IP:PORT`)
# on CORE, sets server_pid and addr, or exits with the log if it does not start within 30 s.
start_command() {
  local core=$1 log=$2
  shift 2
  taskset -c "$core" "$@" >"$log" 2>&1 &
  server_pid=$!
  addr=
  for _ in $(seq 1 300); do
    addr=$(sed -n 's/.*listening addr=\([^ ]*\).*/\1/p' "$log" | head -n 1)
    [ -n "$addr" ] && return 0
    sleep 0.1
  done
  cat "$log" >&2
  echo "server did not start: $*" >&2
  exit 1
}

# start_server CORE LOGFILE ARGS...: start_command for target/release/bareapi serve ARGS.
start_server() {
  local core=$1 log=$2
  shift 2
  start_command "$core" "$log" target/release/bareapi serve --listen 127.0.0.1:0 "$@"
}

# stop_server: stops the server start_command started.
stop_server() {
  kill "$server_pid" 2>/dev/null || true
  wait "$server_pid" 2>/dev/null || true
  server_pid=
}

# cpu_ticks: the server's utime+stime so far (clock ticks, getconf CLK_TCK a second).
cpu_ticks() { awk '{print $14+$15}' "/proc/$server_pid/stat"; }

# make_cert DIR: a self-signed ECDSA P-256 certificate for localhost and 127.0.0.1, valid for
# two days, as DIR/cert.pem and DIR/key.pem.
make_cert() {
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
    -subj /CN=localhost -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
    -keyout "$1/key.pem" -out "$1/cert.pem" 2>/dev/null
}

# pick_spec ROUND I SPEC...: of the specs ("label|command|route"), the one that runs I-th (from
# 0) in ROUND (from 1): the order rotates by one each round, as loadtest/run.py's does. Sets
# label, cmd and route.
pick_spec() {
  local round=$1 i=$2 spec rest
  shift 2
  local specs=("$@")
  spec=${specs[$(((round - 1 + i) % ${#specs[@]}))]}
  label=${spec%%|*} rest=${spec#*|}
  cmd=${rest%%|*} route=${rest#*|}
}

# measure URL SECONDS: wrk -t1 -c64 --latency from core ${LOAD_CORE:-1} for SECONDS (with
# DEPTH=N, N requests pipelined per connection; with HEADER="Name: value", that header on every
# request, e.g. a bearer token for the users API); sets rps, p99, cpu_us (the server's
# utime+stime over the run per request) and hwm_kib (its peak RSS).
measure() {
  local url=$1 seconds=$2 c0 c1 n out pipeline=() header=()
  if [ "${DEPTH:-1}" -gt 1 ]; then pipeline=(-s loadtest/wrk/pipeline.lua); fi
  if [ -n "${HEADER:-}" ]; then header=(-H "$HEADER"); fi
  c0=$(cpu_ticks)
  out=$(taskset -c "${LOAD_CORE:-1}" wrk -t1 -c64 -d"${seconds}s" --latency "${header[@]}" "${pipeline[@]}" "$url" -- "${DEPTH:-1}")
  c1=$(cpu_ticks)
  hwm_kib=$(awk '/VmHWM/ {print $2}' "/proc/$server_pid/status")
  n=$(echo "$out" | awk '/requests in/ {print $1}')
  rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
  p99=$(echo "$out" | awk '$1=="99%" {print $2}')
  cpu_us=$(python3 -c "print(round(($c1 - $c0) / $(getconf CLK_TCK) * 1e6 / $n, 2))")
}
