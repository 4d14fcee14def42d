#!/usr/bin/env bash
# A project-local PostgreSQL for development (`make run`), separate from any system server.
#
# Usage: scripts/dev-postgres.sh start|stop|status|url
#   start   initdb (first time) and start the cluster, create database `rosetta`; idempotent
#   stop    stop it (fast shutdown); no-op when it is not running
#   status  describe it; exit status 0 when running, 3 when not (like pg_ctl status)
#   url     print the connection URL on stdout
#
# Only the URL printed by `url` goes to stdout; all messages go to stderr, so
# `DATABASE_URL=$(scripts/dev-postgres.sh url)` works.
#
# Environment: DEV_PG_PORT (default 54329), PG_BIN_DIR (default: the highest
# /usr/lib/postgresql/*/bin, else the directory of pg_ctl on PATH).
#
# Layout: <repo>/.local/postgres/{data,postgres.log,.s.PGSQL.<port>}. When run as root, the
# server runs as the `postgres` user (initdb and postgres refuse root); if that user cannot
# reach the repository (e.g. it lives under /root), the cluster lives in
# /tmp/rosetta-dev-<hash of the repo path> instead.
set -euo pipefail

PORT="${DEV_PG_PORT:-54329}"
DB_NAME="rosetta"
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"

log() { printf 'dev-postgres: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

is_root() { [[ "$(id -u)" == 0 ]]; }

# Runs a server-side tool as the postgres user when we are root. The working directory is /
# because the postgres user may not be allowed into the caller's directory.
as_pg() {
    if is_root; then
        (cd / && runuser -u postgres -- "$@")
    else
        "$@"
    fi
}

# True when the postgres user can reach (traverse) directory $1.
pg_can_reach() {
    if is_root; then
        runuser -u postgres -- test -x "$1" 2>/dev/null
    else
        return 0
    fi
}

base_dir() {
    if pg_can_reach "$REPO"; then
        printf '%s\n' "$REPO/.local/postgres"
    else
        local hash
        hash="$(printf '%s' "$REPO" | sha256sum | cut -c1-12)"
        printf '%s\n' "/tmp/rosetta-dev-$hash"
    fi
}

BASE="$(base_dir)"
DATA="$BASE/data"
LOG_FILE="$BASE/postgres.log"

# The binaries matching the data directory's major version when it exists, so an upgrade of
# the installed PostgreSQL does not try to run a newer server on an older data directory.
bin_dir() {
    if [[ -n "${PG_BIN_DIR:-}" ]]; then
        printf '%s\n' "$PG_BIN_DIR"
        return
    fi
    if [[ -f "$DATA/PG_VERSION" ]]; then
        local versioned
        versioned="/usr/lib/postgresql/$(cat "$DATA/PG_VERSION")/bin"
        if [[ -x "$versioned/pg_ctl" ]]; then
            printf '%s\n' "$versioned"
            return
        fi
    fi
    local highest
    highest="$(find /usr/lib/postgresql -mindepth 2 -maxdepth 2 -name bin -type d 2>/dev/null \
        | sort -V | tail -n 1)"
    if [[ -n "$highest" && -x "$highest/pg_ctl" ]]; then
        printf '%s\n' "$highest"
        return
    fi
    local pg_ctl
    pg_ctl="$(command -v pg_ctl || true)"
    [[ -n "$pg_ctl" ]] || die "no PostgreSQL binaries found; install PostgreSQL or set PG_BIN_DIR"
    dirname "$(readlink -f "$pg_ctl")"
}

# The unix socket goes next to the data directory; socket paths are limited to 107 bytes,
# so fall back to /tmp for very deep checkouts.
socket_dir() {
    local candidate="$BASE"
    if (( ${#candidate} + ${#PORT} + 12 > 100 )); then
        candidate="/tmp"
    fi
    printf '%s\n' "$candidate"
}

is_running() {
    [[ -f "$DATA/PG_VERSION" ]] && as_pg "$(bin_dir)/pg_ctl" -D "$DATA" status >/dev/null 2>&1
}

# The port of the running server (line 4 of postmaster.pid), else the configured one.
current_port() {
    local port=""
    if is_running; then
        port="$(sed -n 4p "$DATA/postmaster.pid" 2>/dev/null || true)"
    fi
    printf '%s\n' "${port:-$PORT}"
}

url() {
    printf 'postgres://postgres@127.0.0.1:%s/%s\n' "$(current_port)" "$DB_NAME"
}

ensure_base_dir() {
    if [[ "$BASE" != "$REPO/.local/postgres" ]]; then
        log "the postgres user cannot reach $REPO; using $BASE for the cluster"
    fi
    mkdir -p "$BASE"
    if is_root; then
        chown postgres: "$BASE"
    fi
}

init_cluster() {
    if [[ -f "$DATA/PG_VERSION" ]]; then
        return
    fi
    if [[ -e "$DATA" ]] && [[ -n "$(ls -A "$DATA" 2>/dev/null)" ]]; then
        die "$DATA exists but is not a PostgreSQL data directory (interrupted initdb?); remove it and retry"
    fi
    log "initialising a new cluster in $DATA"
    as_pg "$(bin_dir)/initdb" -D "$DATA" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 \
        >>"$LOG_FILE.initdb" 2>&1 \
        || die "initdb failed; see $LOG_FILE.initdb"
}

psql_dev() {
    "$(bin_dir)/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$(current_port)" -U postgres "$@"
}

ensure_database() {
    if [[ "$(psql_dev -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = '$DB_NAME'")" != 1 ]]; then
        log "creating database $DB_NAME"
        psql_dev -d postgres -c "CREATE DATABASE $DB_NAME" >&2
    fi
}

cmd_start() {
    if is_running; then
        log "already running (data: $DATA)"
        ensure_database
        log "url: $(url)"
        return
    fi
    ensure_base_dir
    init_cluster
    local sock
    sock="$(socket_dir)"
    log "starting on 127.0.0.1:$PORT (data: $DATA, log: $LOG_FILE)"
    if ! as_pg "$(bin_dir)/pg_ctl" -D "$DATA" -l "$LOG_FILE" -w -t 60 \
        -o "-p $PORT -k '$sock' -c listen_addresses=127.0.0.1 -c wal_level=logical" \
        start >&2; then
        log "start failed; last lines of $LOG_FILE:"
        tail -n 20 "$LOG_FILE" >&2 || true
        exit 1
    fi
    ensure_database
    log "url: $(url)"
}

cmd_stop() {
    if ! is_running; then
        log "not running"
        return
    fi
    as_pg "$(bin_dir)/pg_ctl" -D "$DATA" -m fast -w -t 60 stop >&2
}

cmd_status() {
    if is_running; then
        log "running: pid $(head -n 1 "$DATA/postmaster.pid"), url $(url)"
        log "data: $DATA, log: $LOG_FILE"
        return 0
    fi
    if [[ -f "$DATA/PG_VERSION" ]]; then
        log "stopped (data: $DATA)"
    else
        log "not initialised (would use $DATA)"
    fi
    return 3
}

case "${1:-}" in
    start) cmd_start ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
    url) url ;;
    *)
        log "usage: $0 start|stop|status|url"
        exit 2
        ;;
esac
