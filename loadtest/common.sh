# Shared by loadtest/wrk-routes.sh and loadtest/oha-users.sh (sourced from the repository root):
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

# start_server CORE LOGFILE ARGS...: starts target/release/bareapi serve ARGS on CORE, sets
# server_pid and addr (IP:PORT), or exits with the log if it does not start within 30 s.
start_server() {
  local core=$1 log=$2
  shift 2
  taskset -c "$core" target/release/bareapi serve --listen 127.0.0.1:0 "$@" >"$log" 2>&1 &
  server_pid=$!
  addr=
  for _ in $(seq 1 300); do
    addr=$(sed -n 's/.*listening addr=\([^ ]*\).*/\1/p' "$log" | head -n 1)
    [ -n "$addr" ] && return 0
    sleep 0.1
  done
  cat "$log" >&2
  echo "server did not start" >&2
  exit 1
}
