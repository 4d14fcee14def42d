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
cargo build -p rosetta-server >&2
echo "Rosetta: http://127.0.0.1:${PORT}   (docs: http://127.0.0.1:${PORT}/docs)" >&2
echo "Dev API key: ${API_KEYS}" >&2
echo "  e.g. curl -H 'Authorization: Bearer ${API_KEYS}' http://127.0.0.1:${PORT}/api/v1/sources" >&2
exec target/debug/rosetta-server serve
