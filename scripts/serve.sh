#!/usr/bin/env bash
# The run command: build in release and serve. Without DATABASE_URL, brings up the project's
# private PostgreSQL cluster (data in .pgdata/, git-ignored; port 55432) and points the server
# at it; it keeps running afterwards (stop it with `scripts/pg.sh stop .pgdata`).
# Extra arguments go to `bareapi serve`, e.g. `scripts/serve.sh --listen 127.0.0.1:9000`.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --release
if [ -z "${DATABASE_URL:-}" ]; then
  DATABASE_URL=$(scripts/pg.sh start .pgdata "${BAREAPI_PG_PORT:-55432}")
  export DATABASE_URL
fi
# Where cargo just built it (CARGO_TARGET_DIR moves it).
exec "${CARGO_TARGET_DIR:-target}/release/bareapi" serve "$@"
