#!/usr/bin/env bash
# A private PostgreSQL cluster for bareapi: start or stop one in a folder of its own.
#
#   scripts/pg.sh start DIR PORT [--throwaway]   initdb if DIR is new, start on 127.0.0.1:PORT,
#                                                 create user and database "bareapi"; prints
#                                                 the URL (with the cluster's password)
#   scripts/pg.sh stop DIR                        stop the cluster in DIR (no error if not running)
#   scripts/pg.sh free-port                       print a free TCP port on 127.0.0.1
#
# Uses the installed PostgreSQL server binaries; when they are missing and we are root, installs
# Debian's postgresql package. PostgreSQL refuses to run as root, so as root the cluster runs as
# the "postgres" system user (created if missing). --throwaway turns off fsync: for test clusters
# that are deleted afterwards, never for data you keep.
#
# Access: over TCP (127.0.0.1 only) every connection needs the password (scram-sha-256), a random
# one made when the cluster is created and kept in DIR/bareapi.password (mode 600, owned by
# whoever ran this script); the Unix socket lives in DIR itself
# (mode 700), so only the cluster's owner reaches it. Clusters made before this had `trust` on
# TCP and no password file: their URL has no password.
set -euo pipefail

die() { echo "pg.sh: $*" >&2; exit 1; }

find_bindir() {
  local d
  if command -v pg_config >/dev/null 2>&1; then
    d=$(pg_config --bindir 2>/dev/null || true)
    if [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ]; then echo "$d"; return 0; fi
  fi
  for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
    if [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ]; then echo "$d"; return 0; fi
  done
  if command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1; then
    dirname "$(command -v initdb)"; return 0
  fi
  return 1
}

ensure_binaries() {
  if BIN=$(find_bindir); then return 0; fi
  if [ "$(id -u)" -ne 0 ]; then
    die "PostgreSQL server binaries (initdb, pg_ctl) not found. Install PostgreSQL (e.g. 'apt-get install postgresql') or set DATABASE_URL to an existing database."
  fi
  echo "pg.sh: installing PostgreSQL (apt-get install postgresql)" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq postgresql >&2
  BIN=$(find_bindir) || die "PostgreSQL installed but initdb/pg_ctl still not found"
}

# Runs a command as the cluster's owner: ourselves, or "postgres" when we are root.
as_owner() {
  if [ "$(id -u)" -eq 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

free_port() {
  # Ports any local TCP socket uses (listening or connected: the ephemeral range overlaps this
  # one, and a client's local port blocks PostgreSQL's bind just as well), from /proc.
  local used=" " p _ local_addr
  for f in /proc/net/tcp /proc/net/tcp6; do
    [ -r "$f" ] || continue
    while read -r _ local_addr _; do
      [ "${local_addr#*:}" != "$local_addr" ] || continue
      used+="$((16#${local_addr##*:})) "
    done < <(tail -n +2 "$f")
  done
  for p in $(seq 55433 55999); do
    case "$used" in *" $p "*) continue ;; esac
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "$p"; return 0; fi
  done
  die "no free port in 55433..55999"
}

start() {
  local dir=$1 port=$2 throwaway=${3:-}
  ensure_binaries
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  if [ "$(id -u)" -eq 0 ]; then
    id postgres >/dev/null 2>&1 || useradd --system --home-dir /var/lib/postgresql --shell /bin/sh postgres
    chown postgres "$dir"
    chmod 700 "$dir"
    as_owner test -x "$dir" || die "user postgres cannot reach $dir; choose a folder it can enter"
  fi
  if [ ! -f "$dir/PG_VERSION" ]; then
    # URL-safe, 24 characters.
    local password pwfile
    password=$(head -c 18 /dev/urandom | base64 | tr '+/' '-_')
    pwfile=$(mktemp)
    printf '%s\n' "$password" >"$pwfile"
    [ "$(id -u)" -eq 0 ] && chown postgres "$pwfile"
    as_owner "$BIN/initdb" -D "$dir" -U bareapi --pwfile="$pwfile" --auth-local=trust --auth-host=scram-sha-256 \
      -E UTF8 --locale=C >"$dir.initdb.log" 2>&1 \
      || { rm -f "$pwfile"; cat "$dir.initdb.log" >&2; die "initdb failed"; }
    rm -f "$pwfile" "$dir.initdb.log"
    (umask 077 && printf '%s\n' "$password" >"$dir/bareapi.password")
  fi
  if as_owner "$BIN/pg_ctl" -D "$dir" status >/dev/null 2>&1; then
    echo "pg.sh: cluster in $dir already running" >&2
  else
    local opts="-p $port -k $dir -c listen_addresses=127.0.0.1 -c max_connections=200 -c shared_buffers=256MB -c synchronous_commit=off"
    if [ "$throwaway" = "--throwaway" ]; then opts="$opts -c fsync=off -c full_page_writes=off"; fi
    as_owner "$BIN/pg_ctl" -D "$dir" -l "$dir/server.log" -w -t 60 -o "$opts" start >/dev/null \
      || { tail -n 30 "$dir/server.log" >&2 || true; die "pg_ctl start failed"; }
  fi
  # Through the cluster's own socket (in DIR): no password needed, none exposed.
  if ! as_owner "$BIN/psql" -h "$dir" -p "$port" -U bareapi -d postgres -tAc \
      "SELECT 1 FROM pg_database WHERE datname = 'bareapi'" | grep -q 1; then
    as_owner "$BIN/createdb" -h "$dir" -p "$port" -U bareapi bareapi
  fi
  if [ -f "$dir/bareapi.password" ]; then
    echo "postgres://bareapi:$(cat "$dir/bareapi.password")@127.0.0.1:$port/bareapi"
  else
    echo "postgres://bareapi@127.0.0.1:$port/bareapi"
  fi
}

stop() {
  local dir=$1
  [ -f "$dir/PG_VERSION" ] || return 0
  BIN=$(find_bindir) || return 0
  as_owner "$BIN/pg_ctl" -D "$dir" -m fast -w stop >/dev/null 2>&1 || true
}

case "${1:-}" in
  start) [ $# -ge 3 ] || die "usage: pg.sh start DIR PORT [--throwaway]"; start "$2" "$3" "${4:-}" ;;
  stop) [ $# -ge 2 ] || die "usage: pg.sh stop DIR"; stop "$2" ;;
  free-port) free_port ;;
  *) die "usage: pg.sh start DIR PORT [--throwaway] | stop DIR | free-port" ;;
esac
