#!/usr/bin/env bash
# WAL monitor benchmark (issue 3, "Benchmark"): 1 000 sources pointing at a few real clusters and
# databases — time of one full tick, connections held, server RSS — and the history query at
# 10 M wal_metrics rows (p99). Targets: tick ≤ 2 s, history query p99 ≤ 5 ms.
#
# What it does, all on this machine and on loopback (127.0.0.1) only:
#   1. installs wrk when missing (apt-get), checks pgbench; builds the server in release
#      (`cargo build --release -p rosetta-server`);
#   2. starts throwaway PostgreSQL clusters on random free ports: one METADATA cluster (database
#      `rosetta`) and 2 SOURCE clusters (wal_level=logical, max_connections=200); in each source
#      cluster 5 databases, each with one inactive logical replication slot (test_decoding) and a
#      50 000-row table written after the slot, so every slot retains WAL. pg_stat_statements is
#      loaded everywhere to show where the tick's time goes;
#   3. seeds 1 000 sources (src-0001…) round-robin over the 10 source databases (user postgres,
#      trust auth, no password) through the API, with the monitor disabled;
#   4. starts the server with the monitor (interval 60 s, timeout 5 s, concurrency 64, JSON logs,
#      LOG_LEVEL=warn,rosetta_wal_monitor=debug): at start-up all 1 000 sources are due, so the
#      first tick samples them all (cold: it opens the connections). Reads the tick from the
#      "WAL monitor tick" log line and cross-checks it with the tick histogram of /metrics; counts
#      the connections held (gauge and pg_stat_activity on the source clusters); checks every
#      source got a status (IDLE: the slots are inactive). Then makes every source due again
#      BENCH_STEADY_TICKS times (`UPDATE wal_monitor SET next_sample_at = now()`) so the next
#      polls sample all 1 000 over the connections already open: the steady-state tick, with the
#      metadata and source statements' time from pg_stat_statements;
#   5. stops the server, bulk-inserts 10 M history rows (1 000 sources × 7 days, shaped like the
#      rows the server wrote in step 4) in chunks, VACUUM ANALYZE; restarts the server with the
#      monitor disabled and measures GET /api/v1/metrics/wal?source_id&from&to&limit=100 (random
#      source, random one-hour window) with wrk at c=4 and c=32, and the same SELECT alone with
#      pgbench (-M prepared) — p99 from pgbench's per-transaction log;
#   6. prints a Markdown report (also written to target/bench/report-wal.md) with PASS/FAIL
#      against the targets.
# Everything it started (server, clusters, slots, temp dir) is stopped, dropped and removed on exit.
#
# Environment:
#   BENCH_SOURCES        sources to seed (default 1000)
#   BENCH_HISTORY_ROWS   wal_metrics rows to insert (default 10000000)
#   BENCH_HISTORY_DAYS   days the history spans, ending now (default 7)
#   BENCH_STEADY_TICKS   steady-state ticks to measure (default 5)
#   BENCH_DURATION       duration of each measured run, wrk syntax (default 10s)
#   BENCH_WARMUP         warm-up before each measured run (default 2s)
#   BENCH_THREADS        wrk threads (default 2)
#   BENCH_STRICT         1: exit 3 when a target is missed (default: report FAIL, exit 0)
#   PG_BIN_DIR           PostgreSQL binaries (default /usr/lib/postgresql/15/bin)
#   BENCH_SKIP_BUILD     1: do not build; use the existing target/release/rosetta-server
#   BENCH_SERVER_BIN     another server binary to measure
# Exit status: 0 done; 1 a step failed; 3 targets missed with BENCH_STRICT=1.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
cd "$REPO"

N_SOURCES="${BENCH_SOURCES:-1000}"
HISTORY_ROWS="${BENCH_HISTORY_ROWS:-10000000}"
HISTORY_DAYS="${BENCH_HISTORY_DAYS:-7}"
STEADY_TICKS="${BENCH_STEADY_TICKS:-5}"
DURATION="${BENCH_DURATION:-10s}"
WARMUP="${BENCH_WARMUP:-2s}"
THREADS="${BENCH_THREADS:-2}"
CONCURRENCIES=(4 32)
PG_BIN="${PG_BIN_DIR:-/usr/lib/postgresql/15/bin}"
TARGET_DIR="${CARGO_TARGET_DIR:-$REPO/target}"
SERVER_BIN="${BENCH_SERVER_BIN:-$TARGET_DIR/release/rosetta-server}"
REPORT_DIR="$TARGET_DIR/bench"
REPORT="$REPORT_DIR/report-wal.md"
LUA_HISTORY="$REPO/scripts/bench/wal_history.lua"

SOURCE_CLUSTERS=2
DBS_PER_CLUSTER=5
SLOT_TABLE_ROWS=50000
CHUNK_ROWS=1000000
HISTORY_WINDOW=3600
HISTORY_LIMIT=100

# The monitor's settings for step 4 (the brief's figures).
MON_INTERVAL=60
MON_TIMEOUT=5
MON_CONCURRENCY=64
MON_LOG_LEVEL="warn,rosetta_wal_monitor=debug"
DEFAULT_POOL=30
# How long to wait for a full tick before calling it stuck.
TICK_WAIT="${BENCH_TICK_WAIT:-120}"

# Targets (issue 3, "Benchmark").
TARGET_TICK_S=2
TARGET_P99_MS=5

START_SECONDS=$SECONDS
LOAD_AT_START="$(cut -d' ' -f1-3 /proc/loadavg)"

log() { printf 'bench-wal: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }
# shellcheck source=scripts/bench/lib.sh
source "$REPO/scripts/bench/lib.sh"

# ---------------------------------------------------------------------------------------------
# Cleanup: everything this script starts is recorded here and torn down on exit.
WORK_DIR=""
CLUSTER_DATA=()   # data directories of the clusters that were started
SOURCE_PORTS=()   # ports of the source clusters (slots to drop)
SERVER_PID=""

stop_server() {
    [[ -n "$SERVER_PID" ]] || return 0
    if kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -TERM "$SERVER_PID" 2>/dev/null
        for _ in $(seq 1 150); do
            kill -0 "$SERVER_PID" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$SERVER_PID" 2>/dev/null || true
    fi
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=""
}

drop_slots() {
    local port db n dropped=0
    (( ${#SOURCE_PORTS[@]} > 0 )) || return 0
    for port in "${SOURCE_PORTS[@]}"; do
        for db in $("$PG_BIN/psql" -X -tA -h 127.0.0.1 -p "$port" -U postgres -d postgres \
            -c "SELECT DISTINCT database FROM pg_replication_slots WHERE slot_name LIKE 'rosetta_bench_%'" 2>/dev/null); do
            n="$("$PG_BIN/psql" -X -tA -q -h 127.0.0.1 -p "$port" -U postgres -d "$db" \
                -c "SELECT count(pg_drop_replication_slot(slot_name)) FROM pg_replication_slots
                    WHERE slot_name LIKE 'rosetta_bench_%' AND NOT active" 2>/dev/null)"
            dropped=$(( dropped + ${n:-0} ))
        done
    done
    log "dropped $dropped replication slots"
}

cleanup() {
    local status=$?
    set +e
    stop_server
    drop_slots
    local data
    for data in "${CLUSTER_DATA[@]}"; do
        as_pg "$PG_BIN/pg_ctl" -D "$data" -m immediate -w -t 30 stop >/dev/null 2>&1
    done
    if [[ -n "$WORK_DIR" && -d "$WORK_DIR" ]]; then
        if (( status != 0 )); then
            # Keep the logs of a failed run for a post-mortem.
            rm -rf "$REPORT_DIR/wal-logs"
            mkdir -p "$REPORT_DIR/wal-logs"
            cp "$WORK_DIR"/*.log "$WORK_DIR"/*.out "$REPORT_DIR/wal-logs/" 2>/dev/null
            log "logs of the failed run kept in $REPORT_DIR/wal-logs"
        fi
        rm -rf "$WORK_DIR"
    fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------------------------------------
# Small helpers (the shared ones are in scripts/bench/lib.sh).

# Ticks of every cluster this script started.
all_pg_ticks() {
    local data total=0
    for data in "${CLUSTER_DATA[@]}"; do
        total=$(( total + $(pg_ticks "$data") ))
    done
    echo "$total"
}

ticks_ms() { awk -v t="$1" -v hz="$CLK_TCK" 'BEGIN { printf "%.0f", 1000 * t / hz }'; }

now_s() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }

# psql against one cluster: q <port> <database> <sql...> (tuples only, unaligned, stops on error).
q() {
    local port="$1" db="$2"
    shift 2
    "$PG_BIN/psql" -X -tA -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$port" -U postgres -d "$db" "$@"
}
meta() { q "$META_PORT" rosetta -c "$1"; }

# ---------------------------------------------------------------------------------------------
# 1. Tools and the release build.

PGBENCH=""
if [[ -x "$PG_BIN/pgbench" ]]; then
    PGBENCH="$PG_BIN/pgbench"
elif command -v pgbench >/dev/null; then
    PGBENCH="$(command -v pgbench)"
else
    die "pgbench is missing; install postgresql-contrib"
fi

for tool in curl awk od xargs sort pgrep; do
    command -v "$tool" >/dev/null || die "$tool is required"
done
[[ -x "$PG_BIN/initdb" && -x "$PG_BIN/pg_ctl" && -x "$PG_BIN/psql" ]] \
    || die "PostgreSQL binaries not found in $PG_BIN (set PG_BIN_DIR)"
if is_root; then
    id postgres >/dev/null 2>&1 || die "running as root needs a 'postgres' user to run the clusters"
fi
(( N_SOURCES >= 1 && HISTORY_ROWS >= N_SOURCES )) || die "need BENCH_SOURCES ≥ 1 and BENCH_HISTORY_ROWS ≥ BENCH_SOURCES"
ensure_wrk

if [[ "${BENCH_SKIP_BUILD:-0}" != 1 ]]; then
    log "building the server (release)"
    cargo build --release -p rosetta-server >&2 \
        || die "cargo build --release -p rosetta-server failed (BENCH_SKIP_BUILD=1 reuses the last binary)"
fi
[[ -x "$SERVER_BIN" ]] || die "$SERVER_BIN not found"

# ---------------------------------------------------------------------------------------------
# 2. Throwaway clusters.

WORK_DIR="$(mktemp -d /tmp/rosetta-bench-wal.XXXXXX)"
if is_root; then
    chown postgres: "$WORK_DIR"
fi
chmod 0755 "$WORK_DIR"

# start_cluster <name> [postgres -c options...]: initdb and start on a free port (another
# process may take the port between the check and the bind: then another port is tried); the
# port is left in CLUSTER_PORT.
CLUSTER_PORT=""
start_cluster() {
    local name="$1"
    shift
    local data="$WORK_DIR/$name" extra="" opt attempt
    for opt in "$@"; do extra+=" -c $opt"; done
    as_pg "$PG_BIN/initdb" -D "$data" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 \
        >"$WORK_DIR/initdb-$name.log" 2>&1 || { cat "$WORK_DIR/initdb-$name.log" >&2; die "initdb ($name) failed"; }
    CLUSTER_DATA+=("$data")
    for attempt in 1 2 3; do
        CLUSTER_PORT="$(free_port)"
        if as_pg "$PG_BIN/pg_ctl" -D "$data" -l "$WORK_DIR/postgres-$name.log" -w -t 60 \
            -o "-p $CLUSTER_PORT -k $WORK_DIR -c listen_addresses=127.0.0.1$extra" start >/dev/null; then
            return 0
        fi
        grep -q 'Address already in use' "$WORK_DIR/postgres-$name.log" || break
        log "port $CLUSTER_PORT was taken meanwhile (attempt $attempt); trying another"
    done
    tail -n 30 "$WORK_DIR/postgres-$name.log" >&2 || true
    die "PostgreSQL ($name) did not start"
}

# shared_buffers/max_wal_size: room for the 10 M-row history (about 4 GB of heap and 1 GB of
# indexes) and its bulk load without checkpoint storms; the history query reads what the OS
# cache holds either way.
start_cluster meta max_connections=200 shared_buffers=1GB max_wal_size=8GB \
    shared_preload_libraries=pg_stat_statements pg_stat_statements.track=all
META_PORT="$CLUSTER_PORT"
log "started the metadata cluster (port $META_PORT)"
q "$META_PORT" postgres -c "CREATE DATABASE rosetta"
meta "CREATE EXTENSION pg_stat_statements"
PG_VERSION="$(meta "SHOW server_version")"

# Source targets: "port database slot" per distinct source database.
TARGETS=()
for c in $(seq 1 "$SOURCE_CLUSTERS"); do
    start_cluster "source$c" wal_level=logical max_connections=200 max_replication_slots=20 \
        shared_preload_libraries=pg_stat_statements
    port="$CLUSTER_PORT"
    SOURCE_PORTS+=("$port")
    log "started source cluster $c (port $port); $DBS_PER_CLUSTER databases, one inactive logical slot each"
    q "$port" postgres -c "CREATE EXTENSION pg_stat_statements"
    for d in $(seq 1 "$DBS_PER_CLUSTER"); do
        db="bench_$d"
        slot="rosetta_bench_c${c}_d${d}"
        q "$port" postgres -c "CREATE DATABASE $db"
        q "$port" "$db" -c "SELECT pg_create_logical_replication_slot('$slot', 'test_decoding')" >/dev/null
        # WAL written after the slot: the slot retains it.
        q "$port" "$db" -c "CREATE TABLE bench_wal AS
            SELECT g AS id, md5(g::text) AS payload FROM generate_series(1, $SLOT_TABLE_ROWS) g"
        TARGETS+=("$port $db $slot")
    done
done
N_TARGETS=${#TARGETS[@]}
for port in "${SOURCE_PORTS[@]}"; do
    retained="$(q "$port" postgres -c "SELECT string_agg(slot_name || '=' || pg_size_pretty(pg_current_wal_lsn() - restart_lsn), ' ' ORDER BY slot_name) FROM pg_replication_slots")"
    log "port $port slots retain: $retained"
done

# ---------------------------------------------------------------------------------------------
# The server.

API_KEY="$(random_hex 16)"
SECRET_KEY="$(random_hex 32)"
AUTH="Authorization: Bearer $API_KEY"
SERVER_LOG=""
API_PORT=""
BASE=""

# start_server <log name> [VAR=value...]: starts the server with the common settings plus these.
start_server() {
    local name="$1"
    shift
    local attempt ready
    SERVER_LOG="$WORK_DIR/server-$name.log"
    for attempt in 1 2 3; do
        API_PORT="$(free_port)"
        BASE="http://127.0.0.1:$API_PORT"
        log "starting $SERVER_BIN on 127.0.0.1:$API_PORT ($name: $*)"
        env DATABASE_URL="postgres://postgres@127.0.0.1:$META_PORT/rosetta" \
            SECRET_KEY="$SECRET_KEY" \
            API_KEYS="$API_KEY" \
            HOST=127.0.0.1 \
            PORT="$API_PORT" \
            APP_ENV=development \
            LOG_FORMAT=json \
            LOG_LEVEL=warn \
            RATE_LIMIT_PER_SECOND=0 \
            "$@" \
            "${OWN_SESSION[@]}" "$SERVER_BIN" serve >"$SERVER_LOG" 2>&1 &
        SERVER_PID=$!
        SERVER_STARTED_AT="$(now_s)"
        ready=0
        for _ in $(seq 1 600); do
            kill -0 "$SERVER_PID" 2>/dev/null || break
            # Authenticated, so a stranger that took the port meanwhile (401) is not mistaken for us.
            if [[ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 -H "$AUTH" "$BASE/api/v1/sources?limit=1" || true)" == 200 ]] \
                && kill -0 "$SERVER_PID" 2>/dev/null; then
                ready=1
                break
            fi
            sleep 0.1
        done
        (( ready )) && return 0
        stop_server
        grep -q 'Address already in use' "$SERVER_LOG" || break
        log "port $API_PORT was taken meanwhile (attempt $attempt); trying another"
    done
    log "the server did not answer GET /api/v1/sources with 200 within 60 s; its log:"
    cat "$SERVER_LOG" >&2
    die "server not ready"
}

# A sample (or the sum of a labelled family) from GET /metrics: metric <name> [label filter regex].
metric() {
    curl -s --max-time 5 -H "$AUTH" "$BASE/metrics" \
        | awk -v n="$1" -v f="${2:-}" '
            $1 == n || (index($1, n "{") == 1 && (f == "" || $1 ~ f)) { s += $2; found = 1 }
            END { if (found) print s; else print "nan" }'
}

# "sampled failed duration_ms" of every "WAL monitor tick" line of the server log, in order.
tick_lines() {
    awk '/"WAL monitor tick"/ {
        s = f = d = "?"
        if (match($0, /"sampled":[0-9]+/)) s = substr($0, RSTART + 10, RLENGTH - 10)
        if (match($0, /"failed":[0-9]+/)) f = substr($0, RSTART + 9, RLENGTH - 9)
        if (match($0, /"duration_ms":[0-9]+/)) d = substr($0, RSTART + 14, RLENGTH - 14)
        print s, f, d
    }' "$SERVER_LOG"
}

# Waits until the tick lines after line <skip> sample ≥ N_SOURCES in total (at most <timeout> s);
# prints "sampled failed duration_ms lines" summed over those lines. Returns 1 on timeout.
wait_full_tick() {
    local skip="$1" timeout="$2" got
    local deadline=$(( SECONDS + timeout ))
    while (( SECONDS < deadline )); do
        kill -0 "$SERVER_PID" 2>/dev/null || { cat "$SERVER_LOG" >&2; die "the server died"; }
        got="$(tick_lines | awk -v skip="$skip" -v n="$N_SOURCES" '
            NR > skip { s += $1; f += $2; d += $3; k++; if (s >= n) { print s, f, d, k; exit } }')"
        if [[ -n "$got" ]]; then
            printf '%s\n' "$got"
            return 0
        fi
        sleep 0.2
    done
    log "no full tick within $timeout s; tick lines so far: $(tick_lines | tr '\n' ';')"
    return 1
}

# Unix time (with fraction) of the first server log line matching <regex>; empty when none.
log_time() {
    local ts
    ts="$(grep -m 1 -E "$1" "$SERVER_LOG" | grep -oE '"timestamp":"[^"]+"' | cut -d'"' -f4 || true)"
    if [[ -n "$ts" ]]; then date -d "$ts" +%s.%N; fi
}

# Connections the probe holds, per source cluster, from pg_stat_activity.
probe_backends() {
    local port total=0 n
    for port in "${SOURCE_PORTS[@]}"; do
        n="$(q "$port" postgres -c "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'rosetta-wal-monitor'")"
        total=$(( total + n ))
    done
    echo "$total"
}
probe_backend_starts() {
    local port
    for port in "${SOURCE_PORTS[@]}"; do
        q "$port" postgres -c "SELECT pid || '@' || backend_start FROM pg_stat_activity
            WHERE application_name = 'rosetta-wal-monitor' ORDER BY pid"
    done
}

# ---------------------------------------------------------------------------------------------
# 3. Seed the sources through the API (monitor off).

start_server seed WAL_MONITOR_ENABLED=false
log "seeding $N_SOURCES sources over $N_TARGETS source databases (8 parallel POSTs)"
BODIES="$WORK_DIR/sources.jsonl"
: >"$BODIES"
for i in $(seq 1 "$N_SOURCES"); do
    read -r port db _ <<<"${TARGETS[$(( (i - 1) % N_TARGETS ))]}"
    printf '{"name":"SRC-%04d","pg_host":"127.0.0.1","pg_port":%s,"pg_database":"%s","pg_username":"postgres","publication_name":"pub_%d","replication_id":%d}\n' \
        "$i" "$port" "$db" "$i" "$i" >>"$BODIES"
done
t0="$(now_s)"
export BASE AUTH
tr '\n' '\0' <"$BODIES" | xargs -0 -P 8 -I{} \
    curl -sS -o /dev/null -w '%{http_code}\n' -X POST "$BASE/api/v1/sources" \
        -H "$AUTH" -H 'Content-Type: application/json' --data-binary {} >"$WORK_DIR/seed-codes.txt" \
    || die "seeding: curl failed"
SEED_S="$(elapsed "$t0" "$(now_s)")"
bad="$(grep -cv '^201$' "$WORK_DIR/seed-codes.txt" || true)"
(( bad == 0 )) || { sort "$WORK_DIR/seed-codes.txt" | uniq -c >&2; die "seeding: $bad POSTs did not answer 201"; }
IDS_FILE="$WORK_DIR/source-ids.txt"
meta "SELECT id FROM sources ORDER BY id" >"$IDS_FILE"
[[ "$(wc -l <"$IDS_FILE")" == "$N_SOURCES" ]] || die "expected $N_SOURCES sources, found $(wc -l <"$IDS_FILE")"
MIN_ID="$(head -n 1 "$IDS_FILE")"
MAX_ID="$(tail -n 1 "$IDS_FILE")"
[[ "$(meta "SELECT count(*) FROM sources WHERE name ~ '^src-[0-9]{4}$'")" == "$N_SOURCES" ]] \
    || die "the sources are not named src-0001… (lower-cased)"
log "seeded $N_SOURCES sources in $SEED_S s (ids $MIN_ID..$MAX_ID, names src-0001…, lower-cased by the API)"
stop_server

# ---------------------------------------------------------------------------------------------
# 4. The monitor: first (cold) tick, then steady-state ticks.

MON_ENV=(WAL_MONITOR_ENABLED=true WAL_MONITOR_INTERVAL_SECONDS="$MON_INTERVAL"
    WAL_MONITOR_TIMEOUT_SECONDS="$MON_TIMEOUT" WAL_MONITOR_CONCURRENCY="$MON_CONCURRENCY"
    LOG_LEVEL="$MON_LOG_LEVEL")
MON_POOL_LABEL="metadata pool $DEFAULT_POOL (DB_POOL_SIZE + DB_MAX_OVERFLOW defaults)"
STARVED=0
sys0="$(sys_ticks)"
pgc0="$(all_pg_ticks)"
start_server monitor "${MON_ENV[@]}"
if ! tick="$(wait_full_tick 0 "$TICK_WAIT")"; then
    # The first tick did not finish: record what the log and the database show, then measure
    # again with a metadata pool larger than the sampling concurrency.
    STARVED=1
    S_STATES="$(meta "SELECT count(*) FROM wal_monitor WHERE status IS NOT NULL")"
    # Counters appear on their first increment: absent means none.
    S_OK="$(metric rosetta_wal_monitor_samples_total 'outcome="ok"' | sed 's/^nan$/0/')"
    S_ERR="$(metric rosetta_wal_monitor_samples_total 'outcome="error"' | sed 's/^nan$/0/')"
    S_CONNECTS="$(grep -c '"connected to source"' "$SERVER_LOG" || true)"
    S_RECORD_FAILS="$(grep -c 'recording WAL samples: metadata database unavailable' "$SERVER_LOG" || true)"
    S_LOOKUP_FAILS="$(grep -c "reading a source's connection settings: metadata database unavailable" "$SERVER_LOG" || true)"
    S_TIMEOUTS="$(grep -c '"error":"no answer within' "$SERVER_LOG" || true)"
    S_RECORD_ERROR="$(grep -m 1 'recording WAL samples' "$SERVER_LOG" | grep -oE '"error":"[^"]+"' | cut -d'"' -f4 || true)"
    started="$(log_time '"WAL monitor started"')"
    last_connect="$(grep '"connected to source"' "$SERVER_LOG" | tail -n 1 | grep -oE '"timestamp":"[^"]+"' | cut -d'"' -f4 || true)"
    [[ -n "$last_connect" ]] && last_connect="$(date -d "$last_connect" +%s.%N)"
    first_fail="$(log_time 'recording WAL samples')"
    S_CONNECTED_AFTER="$( [[ -n "$started" && -n "$last_connect" ]] && elapsed "$started" "$last_connect" || echo '?')"
    S_FIRST_FAIL_AFTER="$( [[ -n "$started" && -n "$first_fail" ]] && elapsed "$started" "$first_fail" || echo '?')"
    S_POOL_BUSY="$(meta "SELECT count(*) || ' metadata connections, ' || count(*) FILTER (WHERE state = 'idle') || ' idle'
        FROM pg_stat_activity WHERE datname = 'rosetta' AND pid <> pg_backend_pid()")"
    log "first tick as configured did not finish within $TICK_WAIT s: $S_STATES of $N_SOURCES states recorded;"
    log "  samples taken: $S_OK ok, $S_ERR error; $S_CONNECTS source connections opened within $S_CONNECTED_AFTER s;"
    log "  $S_RECORD_FAILS record batches failed ('$S_RECORD_ERROR'), the first $S_FIRST_FAIL_AFTER s after start;"
    log "  $S_LOOKUP_FAILS connection-setting lookups failed, $S_TIMEOUTS probe attempts timed out; now $S_POOL_BUSY"
    stop_server
    meta "DELETE FROM wal_metrics; DELETE FROM wal_monitor" >/dev/null
    MON_POOL_SIZE=$(( MON_CONCURRENCY + 8 ))
    MON_POOL_LABEL="DB_POOL_SIZE=$MON_POOL_SIZE: metadata pool $(( MON_POOL_SIZE + 10 )) > concurrency $MON_CONCURRENCY"
    log "measuring again with $MON_POOL_LABEL"
    sys0="$(sys_ticks)"
    pgc0="$(all_pg_ticks)"
    start_server monitor-pool "${MON_ENV[@]}" DB_POOL_SIZE="$MON_POOL_SIZE"
    tick="$(wait_full_tick 0 "$TICK_WAIT")" || die "no full tick within $TICK_WAIT s even with $MON_POOL_LABEL"
fi
read -r T1_SAMPLED T1_FAILED T1_MS T1_LINES <<<"$tick"
T1_READY_S="$(elapsed "$SERVER_STARTED_AT" "$(now_s)")"
sys1="$(sys_ticks)"
pgc1="$(all_pg_ticks)"
# From just before the (measured) server started to the first tick's end: CPU of everything but
# the server and the clusters.
T1_OTHER="$(pct $(( ${sys1% *} - ${sys0% *} - $(proc_ticks "$SERVER_PID") - (pgc1 - pgc0) )) "$(elapsed "$SERVER_STARTED_AT" "$(now_s)")")"
grep -q '"target":"rosetta_wal_monitor::sampler"' "$SERVER_LOG" \
    || log "warning: no log line with target rosetta_wal_monitor::sampler (LOG_LEVEL filter?)"
log "first tick: $T1_SAMPLED sampled, $T1_FAILED failed, ${T1_MS} ms over $T1_LINES tick line(s)"
T1_HIST_SUM="$(metric rosetta_wal_monitor_tick_duration_seconds_sum)"
T1_HIST_COUNT="$(metric rosetta_wal_monitor_tick_duration_seconds_count)"
T1_CONNECTS="$(grep -c '"connected to source"' "$SERVER_LOG" || true)"
T1_GAUGE_CONN="$(metric rosetta_wal_monitor_open_connections)"
T1_PG_CONN="$(probe_backends)"
META_POOL_CONN="$(meta "SELECT count(*) FROM pg_stat_activity WHERE datname = 'rosetta' AND pid <> pg_backend_pid()")"
T1_RSS="$(proc_kib "$SERVER_PID" VmRSS)"
T1_HWM="$(proc_kib "$SERVER_PID" VmHWM)"
log "connections held: gauge $T1_GAUGE_CONN, pg_stat_activity $T1_PG_CONN (connects logged: $T1_CONNECTS); metadata pool $META_POOL_CONN; RSS $(mib "$T1_RSS") MiB (peak $(mib "$T1_HWM"))"

# Correctness: every source has a state; slots are inactive, so IDLE.
STATES="$(meta "SELECT count(*) FROM wal_monitor WHERE status IS NOT NULL")"
STATUS_COUNTS="$(meta "SELECT coalesce(string_agg(status || ' ' || n, ', ' ORDER BY status), 'none')
    FROM (SELECT coalesce(status, 'NULL') AS status, count(*) AS n FROM wal_monitor GROUP BY 1) s")"
IDLE="$(meta "SELECT count(*) FROM wal_monitor WHERE status = 'IDLE'")"
HISTORY_AFTER_T1="$(meta "SELECT count(*) FROM wal_metrics")"
log "wal_monitor: $STATES with a status ($STATUS_COUNTS); wal_metrics rows: $HISTORY_AFTER_T1"
if (( IDLE != N_SOURCES )); then
    meta "SELECT source_id, status, left(error, 200) FROM wal_monitor WHERE status IS DISTINCT FROM 'IDLE' LIMIT 5" >&2
fi
SIZE_RANGE="$(meta "SELECT pg_size_pretty(min(size_bytes)) || ' – ' || pg_size_pretty(max(size_bytes)) FROM wal_monitor WHERE status = 'IDLE'")"
# The shape of a slot the server wrote: the template of the generated history (step 5).
SLOT_TEMPLATE="$(meta "SELECT slots->0 FROM wal_metrics WHERE status = 'IDLE' AND jsonb_array_length(slots) = 1 ORDER BY id LIMIT 1")"
[[ -n "$SLOT_TEMPLATE" ]] || die "no IDLE history row with one slot to copy the shape of"
SAMPLE_ROW="$(meta "SELECT row_to_json(m) FROM (SELECT * FROM wal_metrics WHERE status = 'IDLE' ORDER BY id LIMIT 1) m")"
log "a history row the server wrote: $SAMPLE_ROW"

# Steady state: make every source due again; the next poll (≤ interval/4) samples all of them
# over the connections the first tick opened.
declare -a STEADY_MS STEADY_HIST_MS STEADY_CPU_MS STEADY_OTHER
STARTS_BEFORE="$(probe_backend_starts)"
CONNECTS_BEFORE="$T1_CONNECTS"
q "$META_PORT" rosetta -c "SELECT pg_stat_statements_reset()" >/dev/null
for port in "${SOURCE_PORTS[@]}"; do q "$port" postgres -c "SELECT pg_stat_statements_reset()" >/dev/null; done
for k in $(seq 1 "$STEADY_TICKS"); do
    skip="$(tick_lines | wc -l)"
    sum0="$(metric rosetta_wal_monitor_tick_duration_seconds_sum)"
    cpu0="$(proc_ticks "$SERVER_PID")"
    pgc0="$(all_pg_ticks)"
    sys0="$(sys_ticks)"
    t0="$(now_s)"
    meta "UPDATE wal_monitor SET next_sample_at = now() WHERE lease_owner IS NULL" >/dev/null
    tick="$(wait_full_tick "$skip" $(( MON_INTERVAL + 30 )))" || die "steady tick $k did not finish"
    read -r s f ms lines <<<"$tick"
    cpu1="$(proc_ticks "$SERVER_PID")"
    pgc1="$(all_pg_ticks)"
    sys1="$(sys_ticks)"
    wall="$(elapsed "$t0" "$(now_s)")"
    sum1="$(metric rosetta_wal_monitor_tick_duration_seconds_sum)"
    # CPU of everything but the server and the clusters from the forced due time to the tick's end
    # (including the wait for the next poll): a busy neighbour shows here.
    STEADY_OTHER+=("$(pct $(( ${sys1% *} - ${sys0% *} - (cpu1 - cpu0) - (pgc1 - pgc0) )) "$wall")")
    STEADY_MS+=("$ms")
    STEADY_HIST_MS+=("$(awk -v a="$sum0" -v b="$sum1" 'BEGIN { printf "%.0f", 1000 * (b - a) }')")
    STEADY_CPU_MS+=("$(ticks_ms $(( cpu1 - cpu0 )))")
    log "steady tick $k: $s sampled, $f failed, $ms ms over $lines tick line(s) (histogram: ${STEADY_HIST_MS[-1]} ms; server CPU ${STEADY_CPU_MS[-1]} ms; other processes ${STEADY_OTHER[-1]} CPU meanwhile)"
    (( f == 0 )) || log "warning: $f sources failed in steady tick $k"
done
STEADY_CONNECTS=$(( $(grep -c '"connected to source"' "$SERVER_LOG" || true) - CONNECTS_BEFORE ))
STARTS_AFTER="$(probe_backend_starts)"
CONN_REUSED=no
[[ "$STARTS_BEFORE" == "$STARTS_AFTER" ]] && CONN_REUSED=yes
STEADY_GAUGE_CONN="$(metric rosetta_wal_monitor_open_connections)"
STEADY_PG_CONN="$(probe_backends)"
STEADY_RSS="$(proc_kib "$SERVER_PID" VmRSS)"
STEADY_HWM="$(proc_kib "$SERVER_PID" VmHWM)"
STEADY_MED_MS="$(printf '%s\n' "${STEADY_MS[@]}" | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }')"
STEADY_MAX_MS="$(printf '%s\n' "${STEADY_MS[@]}" | sort -n | tail -n 1)"
log "steady ticks: ${STEADY_MS[*]} ms (median $STEADY_MED_MS); new connections: $STEADY_CONNECTS; same backends: $CONN_REUSED"

# Where the steady ticks' database time went (pg_stat_statements, summed over the ticks).
BREAKDOWN="$WORK_DIR/breakdown.md"
{
    echo "| database | statement | calls | total ms | per tick ms | mean ms |"
    echo "|---|---|---:|---:|---:|---:|"
    meta "SELECT '| metadata | \`' || left(regexp_replace(query, '\s+', ' ', 'g'), 70) || '…\` | ' || calls || ' | '
            || round(total_exec_time::numeric, 1) || ' | ' || round((total_exec_time / $STEADY_TICKS)::numeric, 1)
            || ' | ' || round(mean_exec_time::numeric, 3) || ' |'
          FROM pg_stat_statements
          WHERE dbid = (SELECT oid FROM pg_database WHERE datname = 'rosetta')
            AND query NOT LIKE '%pg_stat_statements%' AND query NOT LIKE 'UPDATE wal_monitor SET next_sample_at = now()%'
          ORDER BY total_exec_time DESC LIMIT 6"
    for port in "${SOURCE_PORTS[@]}"; do
        q "$port" postgres -c "SELECT '| source :$port | \`' || left(regexp_replace(query, '\s+', ' ', 'g'), 70) || '…\` | ' || sum(calls) || ' | '
                || round(sum(total_exec_time)::numeric, 1) || ' | ' || round((sum(total_exec_time) / $STEADY_TICKS)::numeric, 1)
                || ' | ' || round((sum(total_exec_time) / sum(calls))::numeric, 3) || ' |'
              FROM pg_stat_statements
              WHERE query LIKE 'WITH recovery AS%'
              GROUP BY query"
    done
} >"$BREAKDOWN"
cat "$BREAKDOWN" >&2
stop_server

# ---------------------------------------------------------------------------------------------
# 5. The history query at HISTORY_ROWS rows.

TICKS_PER_SOURCE=$(( HISTORY_ROWS / N_SOURCES ))
HISTORY_ROWS=$(( TICKS_PER_SOURCE * N_SOURCES ))
T_END="$(date +%s)"
T_START=$(( T_END - HISTORY_DAYS * 86400 ))
STEP_US=$(( HISTORY_DAYS * 86400 * 1000000 / TICKS_PER_SOURCE ))
log "inserting $HISTORY_ROWS wal_metrics rows ($TICKS_PER_SOURCE per source, one every $(awk -v u="$STEP_US" 'BEGIN { printf "%.1f", u / 1e6 }') s over $HISTORY_DAYS days) in chunks of $CHUNK_ROWS"
# Row g (0-based) is tick g / N of source number g % N (rows arrive in time order, sources
# interleaved, as the monitor writes them); the slot object is the one the server wrote, with
# this row's positions. The sources exist (ids from the table), so the foreign-key triggers are
# skipped for the load (session_replication_role = replica); the CHECK constraints still apply.
t_insert0="$(now_s)"
done_rows=0
chunk_no=0
while (( done_rows < HISTORY_ROWS )); do
    n=$(( HISTORY_ROWS - done_rows < CHUNK_ROWS ? HISTORY_ROWS - done_rows : CHUNK_ROWS ))
    chunk_no=$(( chunk_no + 1 ))
    tc="$(now_s)"
    q "$META_PORT" rosetta <<SQL
SET session_replication_role = replica;
WITH ids AS (
    SELECT id, (row_number() OVER (ORDER BY id) - 1)::int8 AS k FROM sources
), tpl AS (
    SELECT '$SLOT_TEMPLATE'::jsonb AS slot
), rows AS (
    SELECT ids.id AS source_id,
           to_timestamp($T_START) + make_interval(secs => ((g / $N_SOURCES + 1) * $STEP_US + (g % $N_SOURCES) * 1000) / 1e6) AS at,
           -- 16 MiB of WAL per 10 minutes per source database, a slot 1–64 MiB behind.
           4294967296::int8 + (g / $N_SOURCES) * 279620 + (g % $N_SOURCES) * 4096 AS lsn,
           (1 << 20) * (1 + (g * 7919) % 64) AS retained
    FROM generate_series($done_rows::int8, $(( done_rows + n - 1 ))::int8) g
    JOIN ids ON ids.k = g % $N_SOURCES
)
INSERT INTO wal_metrics (source_id, recorded_at, status, sampled_at, in_recovery, current_lsn,
                         wal_dir_bytes, size_bytes, slots, error)
SELECT source_id, at, 'IDLE', at, false, lsn, NULL, retained,
       jsonb_build_array(tpl.slot || jsonb_build_object(
           'restart_lsn', lsn - retained,
           'confirmed_flush_lsn', lsn - retained + 4096,
           'retained_bytes', retained,
           'confirmed_lag_bytes', retained - 4096)),
       NULL
FROM rows, tpl;
SQL
    done_rows=$(( done_rows + n ))
    log "  chunk $chunk_no: $n rows in $(elapsed "$tc" "$(now_s)") s ($done_rows / $HISTORY_ROWS, $(elapsed "$t_insert0" "$(now_s)") s so far)"
done
INSERT_S="$(elapsed "$t_insert0" "$(now_s)")"
tv="$(now_s)"
meta "VACUUM ANALYZE wal_metrics"
VACUUM_S="$(elapsed "$tv" "$(now_s)")"
orphans="$(meta "SELECT count(*) FROM (SELECT DISTINCT source_id FROM wal_metrics) m WHERE NOT EXISTS (SELECT 1 FROM sources s WHERE s.id = m.source_id)")"
(( orphans == 0 )) || die "$orphans history source ids have no source"
keys_real="$(meta "SELECT string_agg(k, ',' ORDER BY k) FROM jsonb_object_keys('$SLOT_TEMPLATE'::jsonb) k")"
keys_gen="$(meta "SELECT string_agg(k, ',' ORDER BY k) FROM jsonb_object_keys((SELECT slots->0 FROM wal_metrics ORDER BY id DESC LIMIT 1)) k")"
[[ "$keys_real" == "$keys_gen" ]] || die "generated slot keys ($keys_gen) differ from the server's ($keys_real)"
TOTAL_ROWS="$(meta "SELECT count(*) FROM wal_metrics")"
SIZES="$(meta "SELECT 'heap ' || pg_size_pretty(pg_relation_size('wal_metrics'))
    || ', TOAST ' || pg_size_pretty(pg_total_relation_size('wal_metrics') - pg_relation_size('wal_metrics') - pg_indexes_size('wal_metrics'))
    || ', indexes ' || pg_size_pretty(pg_indexes_size('wal_metrics'))
    || ' (' || (SELECT string_agg(replace(indexrelid::regclass::text, 'wal_metrics_', '') || ' ' || pg_size_pretty(pg_relation_size(indexrelid)), ', ' ORDER BY indexrelid::regclass::text)
               FROM pg_index WHERE indrelid = 'wal_metrics'::regclass)
    || '), total ' || pg_size_pretty(pg_total_relation_size('wal_metrics'))")"
log "inserted in $INSERT_S s, VACUUM ANALYZE $VACUUM_S s; $TOTAL_ROWS rows; $SIZES"

# The repository's statement (crates/postgres-adapter/src/wal.rs, history_query, as diesel
# renders it), with the window given as Unix seconds for pgbench.
HIST_COLUMNS='"wal_metrics"."id", "wal_metrics"."source_id", "wal_metrics"."recorded_at", "wal_metrics"."status", "wal_metrics"."sampled_at", "wal_metrics"."in_recovery", "wal_metrics"."current_lsn", "wal_metrics"."wal_dir_bytes", "wal_metrics"."slots", "wal_metrics"."error"'
hist_sql() {  # hist_sql <source_id> <from> <to> <limit>
    printf 'SELECT %s FROM "wal_metrics" WHERE ((("wal_metrics"."source_id" = %s) AND ("wal_metrics"."recorded_at" >= %s)) AND ("wal_metrics"."recorded_at" <= %s)) ORDER BY "wal_metrics"."recorded_at" DESC, "wal_metrics"."id" DESC LIMIT %s' \
        "$HIST_COLUMNS" "$1" "$2" "$3" "$4"
}
mid_from=$(( T_START + (T_END - T_START) / 2 ))
PLAN="$(meta "EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) $(hist_sql "$MIN_ID" "to_timestamp($mid_from)" "to_timestamp($(( mid_from + HISTORY_WINDOW )))" "$HISTORY_LIMIT")")"
log "plan of one history query:"
printf '%s\n' "$PLAN" >&2
grep -q 'wal_metrics_source_recorded_at_idx' <<<"$PLAN" || log "warning: the history query does not use wal_metrics_source_recorded_at_idx"

# pgbench: the SELECT alone.
PGB_SCRIPT="$WORK_DIR/history.sql"
{
    printf '\\set sid random(%s, %s)\n' "$MIN_ID" "$MAX_ID"
    printf '\\set t0 random(%s, %s)\n' "$T_START" "$(( T_END - HISTORY_WINDOW ))"
    printf '\\set t1 :t0 + %s\n' "$HISTORY_WINDOW"
    printf '%s;\n' "$(hist_sql :sid 'to_timestamp(:t0)' 'to_timestamp(:t1)' "$HISTORY_LIMIT")"
} >"$PGB_SCRIPT"
(( MAX_ID - MIN_ID + 1 == N_SOURCES )) \
    || log "warning: source ids are not contiguous; pgbench also asks for ids that have no history"
DURATION_S="$(duration_seconds "$DURATION")"
WARMUP_S="$(duration_seconds "$WARMUP")"
declare -A PGB_TPS PGB_AVG PGB_P50 PGB_P99 PGB_IDLE
for c in "${CONCURRENCIES[@]}"; do
    pgb=("$PGBENCH" -h 127.0.0.1 -p "$META_PORT" -U postgres -n -f "$PGB_SCRIPT" -M prepared -c "$c" -j 2)
    if (( WARMUP_S > 0 )); then
        "${pgb[@]}" -T "$WARMUP_S" rosetta >/dev/null 2>&1 || true
    fi
    log "pgbench -c $c -j 2 -T $DURATION_S (history SELECT)"
    rm -f "$WORK_DIR"/pgblog-"$c".*
    sys0="$(sys_ticks)"
    t0="$(now_s)"
    (cd "$WORK_DIR" && "${pgb[@]}" -T "$DURATION_S" -l --log-prefix="pgblog-$c" rosetta >"$WORK_DIR/pgbench-$c.out" 2>&1) \
        || { cat "$WORK_DIR/pgbench-$c.out" >&2; die "pgbench failed"; }
    wall="$(elapsed "$t0" "$(now_s)")"
    sys1="$(sys_ticks)"
    PGB_IDLE[$c]="$(pct $(( ${sys1#* } - ${sys0#* } )) "$wall")"
    PGB_TPS[$c]="$(awk '/^tps = .*without initial connection time/ { printf "%.0f", $3 }' "$WORK_DIR/pgbench-$c.out")"
    PGB_AVG[$c]="$(awk '/^latency average = / { printf "%.3f", $4 }' "$WORK_DIR/pgbench-$c.out")"
    # Per-transaction log: "client_id transaction_no time_us script_no epoch epoch_us".
    read -r p50 p99 <<<"$(cat "$WORK_DIR"/pgblog-"$c".* | awk '{ print $3 }' | sort -n \
        | awk '{ a[NR] = $1 } END { if (NR == 0) { print "nan nan"; exit }
                 i50 = int(NR * 0.50); if (i50 < 1) i50 = 1; i99 = int(NR * 0.99); if (i99 < 1) i99 = 1
                 printf "%.3f %.3f\n", a[i50] / 1000, a[i99] / 1000 }')"
    PGB_P50[$c]="$p50"
    PGB_P99[$c]="$p99"
    failed="$(awk '/^number of failed transactions:/ { print $5 }' "$WORK_DIR/pgbench-$c.out")"
    [[ -z "$failed" || "$failed" == 0 ]] || die "pgbench: $failed failed transactions"
    log "pgbench c=$c: ${PGB_TPS[$c]} TPS, avg ${PGB_AVG[$c]} ms, p50 ${PGB_P50[$c]} ms, p99 ${PGB_P99[$c]} ms; machine idle ${PGB_IDLE[$c]}"
done

# HTTP: the server without the monitor (it would add rows and apply retention).
q "$META_PORT" rosetta -c "SELECT pg_stat_statements_reset()" >/dev/null
start_server history WAL_MONITOR_ENABLED=false
probe_url="$BASE/api/v1/metrics/wal?source_id=$MIN_ID&from=$(date -u -d "@$mid_from" +%Y-%m-%dT%H:%M:%SZ)&to=$(date -u -d "@$(( mid_from + HISTORY_WINDOW ))" +%Y-%m-%dT%H:%M:%SZ)&limit=$HISTORY_LIMIT"
code="$(curl -s -o "$WORK_DIR/history.json" -w '%{http_code}' -H "$AUTH" "$probe_url")"
[[ "$code" == 200 ]] || die "GET $probe_url → $code: $(head -c 500 "$WORK_DIR/history.json")"
HIST_ENTRIES="$(grep -o '"recorded_at"' "$WORK_DIR/history.json" | wc -l)"
HIST_BYTES="$(wc -c <"$WORK_DIR/history.json")"
(( HIST_ENTRIES > 0 )) || die "the history of source $MIN_ID in a one-hour window is empty: $(head -c 300 "$WORK_DIR/history.json")"
log "one history answer: $HIST_ENTRIES entries, $HIST_BYTES bytes"

export BENCH_IDS_FILE="$IDS_FILE" BENCH_T_START="$T_START" BENCH_T_END="$T_END" \
    BENCH_WINDOW="$HISTORY_WINDOW" BENCH_LIMIT="$HISTORY_LIMIT" BENCH_API_KEY="$API_KEY"
declare -A RPS P50 P99 NON2XX ERRS CPU_WRK CPU_SRV CPU_PG CPU_OTHER CPU_IDLE
url="$BASE/api/v1/metrics/wal"
for c in "${CONCURRENCIES[@]}"; do
    if (( WARMUP_S > 0 )); then
        wrk -t "$THREADS" -c "$c" -d "$WARMUP" -s "$LUA_HISTORY" "$url" >/dev/null 2>&1 || true
    fi
    out="$WORK_DIR/wrk-history-$c.out"
    srv0="$(proc_ticks "$SERVER_PID")"
    pg0="$(pg_ticks "$WORK_DIR/meta")"
    sys0="$(sys_ticks)"
    t0="$(now_s)"
    # bash's `time` reports the user+system seconds of wrk (a child of this shell).
    TIMEFORMAT='%U %S'
    { time wrk -t "$THREADS" -c "$c" -d "$DURATION" --latency --timeout 5s -s "$LUA_HISTORY" "$url" >"$out" 2>&1 ; } \
        2>"$out.time" || { cat "$out" >&2; die "wrk failed (c=$c)"; }
    wall="$(elapsed "$t0" "$(now_s)")"
    sys1="$(sys_ticks)"
    srv1="$(proc_ticks "$SERVER_PID")"
    pg1="$(pg_ticks "$WORK_DIR/meta")"
    wrk_cpu="$(awk -v hz="$CLK_TCK" '{ printf "%.0f", ($1 + $2) * hz }' "$out.time")"
    busy=$(( ${sys1% *} - ${sys0% *} ))
    CPU_WRK[$c]="$(pct "$wrk_cpu" "$wall")"
    CPU_SRV[$c]="$(pct $(( srv1 - srv0 )) "$wall")"
    CPU_PG[$c]="$(pct $(( pg1 - pg0 )) "$wall")"
    CPU_OTHER[$c]="$(pct $(( busy - wrk_cpu - (srv1 - srv0) - (pg1 - pg0) )) "$wall")"
    CPU_IDLE[$c]="$(pct $(( ${sys1#* } - ${sys0#* } )) "$wall")"
    kill -0 "$SERVER_PID" 2>/dev/null || { cat "$SERVER_LOG" >&2; die "the server died during wrk c=$c"; }
    RPS[$c]="$(awk '/^Requests\/sec:/ { printf "%.0f", $2 }' "$out")"
    P50[$c]="$(to_ms "$(awk '/Latency Distribution/ { f = 1 } f && $1 == "50%" { print $2; exit }' "$out")")"
    P99[$c]="$(to_ms "$(awk '/Latency Distribution/ { f = 1 } f && $1 == "99%" { print $2; exit }' "$out")")"
    NON2XX[$c]="$(awk '/Non-2xx or 3xx responses:/ { print $NF }' "$out")"
    NON2XX[$c]="${NON2XX[$c]:-0}"
    ERRS[$c]="$(awk '/Socket errors:/ { gsub(",", ""); print $4 + $6 + $8 + $10 }' "$out")"
    ERRS[$c]="${ERRS[$c]:-0}"
    [[ -n "${RPS[$c]}" ]] || { cat "$out" >&2; die "no Requests/sec in wrk output (c=$c)"; }
    log "wrk c=$c: ${RPS[$c]} req/s, p50 ${P50[$c]} ms, p99 ${P99[$c]} ms, non-2xx ${NON2XX[$c]}, socket errors ${ERRS[$c]}; CPU wrk ${CPU_WRK[$c]} server ${CPU_SRV[$c]} postgres ${CPU_PG[$c]} other ${CPU_OTHER[$c]} idle ${CPU_IDLE[$c]}"
done
H_RSS="$(proc_kib "$SERVER_PID" VmRSS)"
H_HWM="$(proc_kib "$SERVER_PID" VmHWM)"
# The statement the server really sent, and its server-side time.
SERVER_STMT="$(meta "SELECT calls || ' calls, mean ' || round(mean_exec_time::numeric, 3) || ' ms, max ' || round(max_exec_time::numeric, 3) || ' ms: ' || regexp_replace(query, '\s+', ' ', 'g')
    FROM pg_stat_statements WHERE query LIKE 'SELECT%FROM \"wal_metrics\"%' ORDER BY calls DESC LIMIT 1")"
log "server's history statement: $SERVER_STMT"
HTTP_STATEMENTS="$(meta "SELECT string_agg(format('%s × \`%s\` (mean %s ms)', calls, left(regexp_replace(query, '\s+', ' ', 'g'), 40), round(mean_exec_time::numeric, 3)), '; ' ORDER BY calls DESC)
    FROM (SELECT * FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname = 'rosetta')
          AND query NOT LIKE '%pg_stat_statements%' ORDER BY calls DESC LIMIT 3) t")"
log "statements during the HTTP runs: $HTTP_STATEMENTS"
stop_server

# ---------------------------------------------------------------------------------------------
# 6. Report.

GIT_COMMIT="$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)"
if [[ -n "$(git -C "$REPO" status --porcelain 2>/dev/null || true)" ]]; then
    GIT_COMMIT="$GIT_COMMIT (with uncommitted changes)"
fi
CPU_MODEL="$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)"
MEM_TOTAL="$(awk '/^MemTotal:/ { printf "%.0f", $2 / 1048576 }' /proc/meminfo)"
le() { awk -v a="$1" -v b="$2" 'BEGIN { print (a != "nan" && a + 0 <= b + 0) ? 1 : 0 }'; }
per_s() { awk -v n="$1" -v ms="$2" 'BEGIN { printf "%.0f", (ms > 0 ? n * 1000 / ms : 0) }'; }
# The histogram holds the first tick only (count 1) when it is read right after it.
T1_HIST_MS="$(awk -v s="$T1_HIST_SUM" -v c="$T1_HIST_COUNT" 'BEGIN { printf "%.0f%s", 1000 * s, (c == 1 ? "" : " (" c " ticks)") }')"

ALL_PASS=1
MISSED=()
# target <label> <value> <ok 0|1>: one row of the targets table.
target() {
    if [[ "$3" != 1 ]]; then
        ALL_PASS=0
        MISSED+=("$1")
    fi
    printf '| %s | %s | %s |\n' "$1" "$2" "$(passfail "$3")"
}
{
    echo "## Rosetta WAL monitor benchmark"
    echo
    echo "- machine: $(nproc) CPUs, ${CPU_MODEL:-unknown}, ${MEM_TOTAL} GiB RAM; everything on 127.0.0.1 (same machine); load average at start $LOAD_AT_START"
    echo "- commit: $GIT_COMMIT; $(date -u +%Y-%m-%dT%H:%M:%SZ); total run time $(( SECONDS - START_SECONDS )) s"
    echo "- PostgreSQL $PG_VERSION: metadata cluster (shared_buffers=1GB, max_wal_size=8GB) and $SOURCE_CLUSTERS source clusters (wal_level=logical, max_connections=200)"
    echo "- sources: $N_SOURCES (seeded through the API in $SEED_S s) round-robin over $N_TARGETS databases ($DBS_PER_CLUSTER per source cluster), user postgres (superuser: \`pg_ls_waldir()\` is read), one inactive \`test_decoding\` slot per database retaining $SIZE_RANGE"
    echo "- monitor: interval ${MON_INTERVAL} s, timeout ${MON_TIMEOUT} s, concurrency $MON_CONCURRENCY, $MON_POOL_LABEL"
    echo
    echo "### Tick"
    echo
    if (( STARVED )); then
        echo "**As configured (concurrency $MON_CONCURRENCY, metadata pool $DEFAULT_POOL) the first tick did not finish within $TICK_WAIT s.**"
        echo "$S_CONNECTS source connections were opened (the last ${S_CONNECTED_AFTER} s after the monitor started);"
        echo "$S_OK samples ok and $S_ERR failed by then; $S_STATES of $N_SOURCES sources had a recorded state."
        if (( S_RECORD_FAILS > 0 )); then
            echo "Recording stalled: $S_RECORD_FAILS record batches failed with \"$S_RECORD_ERROR\" (the first"
            echo "${S_FIRST_FAIL_AFTER} s after start)."
        fi
        echo "$S_LOOKUP_FAILS connection-setting lookups failed and $S_TIMEOUTS probe attempts timed out."
        echo "Metadata connections at that point: $S_POOL_BUSY."
        echo "The figures below were measured again with $MON_POOL_LABEL."
        echo
    fi
    echo "| tick | sampled | failed | duration (log) | duration (histogram) | sources/s | new connections | other processes' CPU |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|"
    if (( STARVED )); then
        printf '| first, as configured (pool %s) | %s | %s | > %s s (did not finish) | | | %s | |\n' "$DEFAULT_POOL" \
            "$(awk -v a="$S_OK" -v b="$S_ERR" 'BEGIN { print a + b }')" "$S_ERR" "$TICK_WAIT" "$S_CONNECTS"
    fi
    printf '| first (cold, at start-up) | %s | %s | %s ms | %s ms | %s | %s | %s |\n' "$T1_SAMPLED" "$T1_FAILED" "$T1_MS" \
        "$T1_HIST_MS" "$(per_s "$T1_SAMPLED" "$T1_MS")" "$T1_CONNECTS" "$T1_OTHER"
    for k in $(seq 1 "$STEADY_TICKS"); do
        printf '| steady %s (all due again) | %s | 0 | %s ms | %s ms | %s | %s | %s |\n' "$k" "$N_SOURCES" "${STEADY_MS[$((k - 1))]}" \
            "${STEADY_HIST_MS[$((k - 1))]}" "$(per_s "$N_SOURCES" "${STEADY_MS[$((k - 1))]}")" \
            "$( (( k == 1 )) && echo "$STEADY_CONNECTS (all steady ticks)" || echo "")" "${STEADY_OTHER[$((k - 1))]}"
    done
    echo
    echo "Steady ticks: median $STEADY_MED_MS ms, slowest $STEADY_MAX_MS ms. \"Other processes' CPU\" is the CPU used by everything"
    echo "but the server and the clusters (100% = one core of $(nproc)) from the start of the wait to the tick's end: a"
    echo "neighbour's build shows there and slows the tick."
    echo
    echo "First full tick done $T1_READY_S s after the server was started (migrations and the listener included)."
    echo "Steady ticks: every source made due again with \`UPDATE wal_monitor SET next_sample_at = now()\`;"
    echo "the next poll samples them over the open connections (same backend pids before and after: $CONN_REUSED);"
    echo "server CPU per steady tick: ${STEADY_CPU_MS[*]} ms."
    echo
    echo "| after | connections held (gauge) | probe backends (pg_stat_activity, both source clusters) | metadata pool connections | server RSS | RSS peak |"
    echo "|---|---:|---:|---:|---:|---:|"
    printf '| first tick | %s | %s | %s | %s MiB | %s MiB |\n' "$T1_GAUGE_CONN" "$T1_PG_CONN" "$META_POOL_CONN" "$(mib "$T1_RSS")" "$(mib "$T1_HWM")"
    printf '| steady ticks | %s | %s | | %s MiB | %s MiB |\n' "$STEADY_GAUGE_CONN" "$STEADY_PG_CONN" "$(mib "$STEADY_RSS")" "$(mib "$STEADY_HWM")"
    echo
    echo "wal_monitor after the first tick: $STATES of $N_SOURCES sources with a status — $STATUS_COUNTS."
    echo
    echo "Database time of the $STEADY_TICKS steady ticks (pg_stat_statements):"
    echo
    cat "$BREAKDOWN"
    echo
    echo "### History query at $TOTAL_ROWS wal_metrics rows"
    echo
    echo "- insert: $HISTORY_ROWS rows ($TICKS_PER_SOURCE per source over $HISTORY_DAYS days, sources interleaved in time order as the monitor writes them) in $chunk_no chunks: $INSERT_S s; VACUUM ANALYZE $VACUUM_S s"
    echo "  (one IDLE slot object per row, shaped like the server's rows; wal_dir_bytes NULL; foreign-key triggers skipped during the load, CHECK constraints enforced)"
    echo "- sizes: $SIZES"
    echo "- query: \`GET /api/v1/metrics/wal?source_id=<random>&from=<random>&to=<from + 1 h>&limit=$HISTORY_LIMIT\` (about $HIST_ENTRIES entries, $HIST_BYTES bytes per answer)"
    echo "- server: $SERVER_STMT"
    echo
    echo "| path | concurrency | req/s or TPS | average | p50 | p99 | non-2xx | machine idle |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|"
    for c in "${CONCURRENCIES[@]}"; do
        non2xx="${NON2XX[$c]}"
        (( ERRS[$c] > 0 )) && non2xx="$non2xx (+${ERRS[$c]} socket errors)"
        printf '| HTTP (wrk, %s threads) | %s | %s | %s ms | %s ms | %s ms | %s | %s |\n' "$THREADS" "$c" "${RPS[$c]}" \
            "$(awk -v c="$c" -v r="${RPS[$c]}" 'BEGIN { printf "%.2f", 1000 * c / r }')" "${P50[$c]}" "${P99[$c]}" "$non2xx" "${CPU_IDLE[$c]}"
    done
    for c in "${CONCURRENCIES[@]}"; do
        printf '| SQL (pgbench -M prepared, -j 2) | %s | %s | %s ms | %s ms | %s ms | | %s |\n' "$c" "${PGB_TPS[$c]}" "${PGB_AVG[$c]}" \
            "${PGB_P50[$c]}" "${PGB_P99[$c]}" "${PGB_IDLE[$c]}"
    done
    echo
    echo "HTTP average = concurrency ÷ req/s (closed loop). Both tools run closed loops on this 2-core machine: a run"
    echo "with little idle CPU measures queueing behind a saturated CPU (latency ≈ concurrency ÷ throughput), not the"
    echo "cost of one query."
    echo
    echo "pgbench runs the server's statement text (window bounds as \`to_timestamp(:t)\`); its p50/p99 come from the"
    echo "per-transaction log (-l). Metadata statements during the HTTP runs: $HTTP_STATEMENTS."
    echo
    echo "CPU during each measured run (100% = one core; the machine has $(nproc) × 100%; \"other\" is every other process, e.g. a build):"
    echo
    echo "| run | concurrency | wrk | server | postgres | other | idle |"
    echo "|---|---:|---:|---:|---:|---:|---:|"
    for c in "${CONCURRENCIES[@]}"; do
        printf '| HTTP | %s | %s | %s | %s | %s | %s |\n' "$c" "${CPU_WRK[$c]}" "${CPU_SRV[$c]}" "${CPU_PG[$c]}" "${CPU_OTHER[$c]}" "${CPU_IDLE[$c]}"
    done
    echo
    echo "Server RSS during the history runs: $(mib "$H_RSS") MiB (peak $(mib "$H_HWM") MiB)."
    echo
    echo '```'
    printf '%s\n' "$PLAN"
    echo '```'
    echo
    echo "### Targets"
    echo
    echo "| target | value | result |"
    echo "|---|---:|---|"
    if (( STARVED )); then
        target "first full tick ≤ $TARGET_TICK_S s, as configured (pool $DEFAULT_POOL, concurrency $MON_CONCURRENCY)" \
            "did not finish in $TICK_WAIT s" 0
    fi
    suffix=""
    (( STARVED )) && suffix=", $MON_POOL_LABEL"
    target "first full tick ($N_SOURCES sources, cold) ≤ $TARGET_TICK_S s$suffix" "$T1_MS ms" \
        "$(le "$(awk -v ms="$T1_MS" 'BEGIN { print ms / 1000 }')" "$TARGET_TICK_S")"
    target "steady full tick (slowest of $STEADY_TICKS) ≤ $TARGET_TICK_S s$suffix" "$STEADY_MAX_MS ms" \
        "$(le "$(awk -v ms="$STEADY_MAX_MS" 'BEGIN { print ms / 1000 }')" "$TARGET_TICK_S")"
    target "every source sampled, all IDLE" "$STATUS_COUNTS" $(( STATES == N_SOURCES && IDLE == N_SOURCES && T1_FAILED == 0 ))
    for c in "${CONCURRENCIES[@]}"; do
        ok="$(le "${P99[$c]}" "$TARGET_P99_MS")"
        (( NON2XX[$c] == 0 && ERRS[$c] == 0 )) || ok=0
        target "history p99 ≤ $TARGET_P99_MS ms, HTTP c=$c (no errors)" "${P99[$c]} ms" "$ok"
    done
    for c in "${CONCURRENCIES[@]}"; do
        target "history p99 ≤ $TARGET_P99_MS ms, SQL c=$c" "${PGB_P99[$c]} ms" "$(le "${PGB_P99[$c]}" "$TARGET_P99_MS")"
    done
    echo
    missed=""
    if (( ${#MISSED[@]} > 0 )); then
        missed=" (missed: $(printf '%s; ' "${MISSED[@]}" | sed 's/; $//'))"
    fi
    echo "Overall: $(passfail "$ALL_PASS")$missed"
} >"$WORK_DIR/report.md"

mkdir -p "$REPORT_DIR"
cp "$WORK_DIR/report.md" "$REPORT"
echo
cat "$REPORT"
echo
log "report written to $REPORT; took $(( SECONDS - START_SECONDS )) s"

if (( ! ALL_PASS )) && [[ "${BENCH_STRICT:-0}" == 1 ]]; then
    exit 3
fi
