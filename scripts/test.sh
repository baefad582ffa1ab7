#!/usr/bin/env bash
# The test command: formatting, lints (whole workspace), then every test (unit, integration,
# property, bench targets run once) against a throwaway PostgreSQL cluster that is always stopped
# and removed, failure or not; then the benches are built and the load-test suite runs its smoke
# pass. With DATABASE_URL set, that database is used instead and nothing is started.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy --workspace --all-targets --all-features -- -D warnings"
cargo clippy --workspace --all-targets --all-features -- -D warnings

if [ -z "${DATABASE_URL:-}" ]; then
  pgdir=$(mktemp -d "${TMPDIR:-/tmp}/bareapi-test-pg.XXXXXX")
  cleanup() { scripts/pg.sh stop "$pgdir"; rm -rf "$pgdir"; }
  trap cleanup EXIT
  port=$(scripts/pg.sh free-port)
  echo "== throwaway PostgreSQL on 127.0.0.1:$port ($pgdir)"
  DATABASE_URL=$(scripts/pg.sh start "$pgdir" "$port" --throwaway)
  # (tests/db_restart.rs starts, stops and restarts a cluster of its own.)
  export DATABASE_URL
fi

# nginx (tests/nginx.rs) and pgbouncer (tests/pgbouncer.rs): Debian's packages, installed when
# missing. The tests run their own instances; the packages' system services are not started.
missing=()
[ -x /usr/sbin/nginx ] || command -v nginx >/dev/null 2>&1 || missing+=(nginx)
[ -x /usr/sbin/pgbouncer ] || command -v pgbouncer >/dev/null 2>&1 || missing+=(pgbouncer)
# curl (tests/tls.rs: HTTP/1.1 and HTTP/2 over TLS; Debian's curl has HTTP/2 through nghttp2).
command -v curl >/dev/null 2>&1 || missing+=(curl)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "test.sh: the tests need ${missing[*]}; install them (apt-get install ${missing[*]})" >&2
    exit 1
  fi
  echo "== installing ${missing[*]} (apt-get)"
  # policy-rc.d exit 101 keeps the packages' post-install scripts from starting services.
  no_start=
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d && no_start=1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  if [ -n "$no_start" ]; then rm -f /usr/sbin/policy-rc.d; fi
fi

# schemathesis (tests/openapi_conformance.rs) lives in a virtualenv of its own under target/.
ST_VENV=${ST_VENV:-target/schemathesis-venv}
ST_VERSION=4.32.5
if ! "$ST_VENV/bin/schemathesis" --version 2>/dev/null | grep -q "$ST_VERSION"; then
  echo "== installing schemathesis $ST_VERSION into $ST_VENV"
  python3 -m venv "$ST_VENV"
  "$ST_VENV/bin/pip" install -q --disable-pip-version-check "schemathesis==$ST_VERSION"
fi
SCHEMATHESIS="$(pwd)/$ST_VENV/bin/schemathesis"
export SCHEMATHESIS

# test-hooks adds /__test/panic and /__test/sleep to the binary the integration tests start.
echo "== cargo test --all-targets --features test-hooks"
cargo test --all-targets --features test-hooks

# Benches must keep compiling, and the load-test suite must keep working: a 1 s-per-run smoke
# pass over every server and route (the full run is `loadtest/run.py`, for people).
echo "== cargo bench --no-run"
cargo bench --no-run --quiet
echo "== loadtest/run.py --smoke"
python3 loadtest/run.py --smoke
