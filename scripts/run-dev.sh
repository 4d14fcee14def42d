#!/usr/bin/env bash
# `make run`: serve the API for local development.
# Uses DATABASE_URL (environment or .env) when set; otherwise starts the project-local
# PostgreSQL (scripts/dev-postgres.sh). Generates a dev SECRET_KEY and API key once, keeps them
# in .local/dev.env (so stored secrets stay readable across runs) and prints them.
set -euo pipefail
cd "$(dirname "$0")/.."

dotenv_value() { [ -f .env ] && grep -E "^$1=" .env | tail -n1 | cut -d= -f2- || true; }

mkdir -p .local
if [ ! -f .local/dev.env ]; then
  umask 077
  {
    echo "SECRET_KEY=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')"
    echo "API_KEYS=dev-$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')"
  } > .local/dev.env
fi
# shellcheck disable=SC1091
set -a; . .local/dev.env; set +a

if [ -z "${DATABASE_URL:-}" ] && [ -z "$(dotenv_value DATABASE_URL)" ]; then
  scripts/dev-postgres.sh start >&2
  DATABASE_URL="$(scripts/dev-postgres.sh url)"
  export DATABASE_URL
fi

export APP_ENV="${APP_ENV:-development}"
export PORT="${PORT:-8000}"
# Sample every 15 s here (the default is 300 s), so the console's charts move while you try
# things; set WAL_MONITOR_INTERVAL_SECONDS (or it in .env) to change it.
if [ -z "${WAL_MONITOR_INTERVAL_SECONDS:-}" ] && [ -z "$(dotenv_value WAL_MONITOR_INTERVAL_SECONDS)" ]; then
  export WAL_MONITOR_INTERVAL_SECONDS=15
fi
cargo build -p rosetta-server >&2

banner() {
    echo "Rosetta: http://127.0.0.1:${PORT}   (docs: http://127.0.0.1:${PORT}/docs)" >&2
    echo "Dev API key: ${API_KEYS}" >&2
    echo "  e.g. curl -H 'Authorization: Bearer ${API_KEYS}' http://127.0.0.1:${PORT}/api/v1/sources" >&2
}

# The banner comes once this server is listening (its "listening" log line), never before: a
# server that cannot bind (the port is taken) prints its error and no URL.
show_banner_when_listening() {
    local shown=""
    while IFS= read -r line; do
        printf '%s\n' "$line"
        if [[ -z "$shown" && "$line" == *listening* ]]; then
            banner
            shown=1
        fi
    done
}

target/debug/rosetta-server serve > >(show_banner_when_listening) 2>&1 &
server=$!
# Background jobs of a script ignore Ctrl-C: hand INT and TERM to the server, which stops
# gracefully.
signalled=""
trap 'signalled=1; kill -INT "$server" 2>/dev/null' INT
trap 'signalled=1; kill -TERM "$server" 2>/dev/null' TERM
status=0
wait "$server" || status=$?
# A trapped signal interrupts `wait`; then wait again, for the server's own exit status.
if [[ -n "$signalled" ]]; then
    status=0
    wait "$server" || status=$?
fi
exit "$status"
