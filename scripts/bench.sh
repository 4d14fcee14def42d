#!/usr/bin/env bash
# `make bench`: load benchmarks of a release build of rosetta-server, with pgbench as the ceiling.
#
# What it does, all on this machine and on loopback (127.0.0.1) only:
#   1. installs wrk when missing (apt-get) and checks that pgbench is there;
#   2. builds the server in release (`cargo build --release -p rosetta-server`);
#   3. starts a throwaway PostgreSQL cluster (default settings except listen_addresses=127.0.0.1 and
#      max_connections=200) on a random free port, creates database `rosetta`;
#   4. starts `rosetta-server serve` against it (the server migrates on start) and waits for
#      GET /api/v1/health → 200;
#   5. seeds 100 sources, 20 destinations and 100 pipelines through the API;
#   6. pgbench ceiling: the single-row SELECT that GET one source does, at c=4 and c=32;
#   7. wrk (2 threads, --latency, a 2 s warm-up before each measured run) at c=4 and c=32:
#      GET /api/v1/sources/{id}, GET /api/v1/pipelines?limit=100, POST /api/v1/sources;
#      after each run the server's VmHWM (peak RSS) and VmRSS, and the CPU used by wrk, the server
#      and PostgreSQL during the measured run;
#   8. prints a Markdown report (also written to target/bench/report.md) with PASS/FAIL against the
#      targets of issue 2: GET one source ≥ 0.4 × pgbench TPS, p99 ≤ 10 ms at c=32, RSS ≤ 30 MiB.
# Everything it started (server, cluster, temp dir) is stopped and removed on exit.
#
# Environment:
#   BENCH_DURATION   duration of each measured run, wrk syntax (default 10s; e.g. 30s, 1m)
#   BENCH_WARMUP     warm-up before each measured run (default 2s)
#   BENCH_THREADS    wrk threads (default 2)
#   BENCH_STRICT     1: exit 3 when a target is missed (default: report FAIL, exit 0)
#   PG_BIN_DIR       PostgreSQL binaries (default /usr/lib/postgresql/15/bin)
#   BENCH_SKIP_BUILD 1: do not build; use the existing target/release/rosetta-server
#   BENCH_SERVER_BIN another server binary to measure (implies nothing about the build step)
# Exit status: 0 done; 1 a step failed (including any non-2xx answer to a GET); 3 targets missed
# with BENCH_STRICT=1.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
cd "$REPO"

DURATION="${BENCH_DURATION:-10s}"
WARMUP="${BENCH_WARMUP:-2s}"
THREADS="${BENCH_THREADS:-2}"
CONCURRENCIES=(4 32)
PG_BIN="${PG_BIN_DIR:-/usr/lib/postgresql/15/bin}"
TARGET_DIR="${CARGO_TARGET_DIR:-$REPO/target}"
SERVER_BIN="${BENCH_SERVER_BIN:-$TARGET_DIR/release/rosetta-server}"
REPORT_DIR="$TARGET_DIR/bench"
REPORT="$REPORT_DIR/report.md"
LUA_POST="$REPO/scripts/bench/post_source.lua"

N_SOURCES=100
N_DESTINATIONS=20
N_PIPELINES=100

# Targets (issue 2, "Benchmarks").
TARGET_RATIO=0.4
TARGET_P99_MS=10
TARGET_RSS_MIB=30

START_SECONDS=$SECONDS

log() { printf 'bench: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }
# shellcheck source=scripts/bench/lib.sh
source "$REPO/scripts/bench/lib.sh"

# ---------------------------------------------------------------------------------------------
# Cleanup: everything this script starts is recorded here and torn down on exit.
WORK_DIR=""
PG_DATA=""
PG_STARTED=0
SERVER_PID=""

cleanup() {
    local status=$?
    set +e
    if [[ -n "$SERVER_PID" ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -TERM "$SERVER_PID" 2>/dev/null
        for _ in $(seq 1 100); do
            kill -0 "$SERVER_PID" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$SERVER_PID" 2>/dev/null
        wait "$SERVER_PID" 2>/dev/null
    fi
    if (( PG_STARTED )); then
        as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -m immediate -w -t 30 stop >/dev/null 2>&1
    fi
    if [[ -n "$WORK_DIR" && -d "$WORK_DIR" ]]; then
        rm -rf "$WORK_DIR"
    fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------------------------------------
# 1. Load tools (the helpers shared with bench-wal.sh are in scripts/bench/lib.sh).

ensure_pgbench() {
    if [[ -x "$PG_BIN/pgbench" ]]; then
        PGBENCH="$PG_BIN/pgbench"
    elif command -v pgbench >/dev/null; then
        PGBENCH="$(command -v pgbench)"
    else
        command -v apt-get >/dev/null || die "pgbench is missing; install postgresql-contrib"
        local sudo=()
        is_root || sudo=(sudo)
        log "installing pgbench (postgresql-contrib)"
        if ! "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y postgresql-contrib >&2; then
            "${sudo[@]}" apt-get update >&2
            "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y postgresql-contrib >&2
        fi
        PGBENCH="$(command -v pgbench)" || die "pgbench still missing after apt-get install"
    fi
}

for tool in curl awk od pgrep; do
    command -v "$tool" >/dev/null || die "$tool is required"
done
[[ -x "$PG_BIN/initdb" && -x "$PG_BIN/pg_ctl" ]] \
    || die "PostgreSQL binaries not found in $PG_BIN (set PG_BIN_DIR)"
if is_root; then
    id postgres >/dev/null 2>&1 || die "running as root needs a 'postgres' user to run the cluster"
fi
ensure_wrk
PGBENCH=""
ensure_pgbench

# ---------------------------------------------------------------------------------------------
# 2. Release build.

if [[ "${BENCH_SKIP_BUILD:-0}" != 1 ]]; then
    log "building the server (release)"
    cargo build --release -p rosetta-server >&2 \
        || die "cargo build --release -p rosetta-server failed (BENCH_SKIP_BUILD=1 reuses the last binary)"
fi
[[ -x "$SERVER_BIN" ]] || die "$SERVER_BIN not found"

# ---------------------------------------------------------------------------------------------
# 3. Throwaway PostgreSQL.

WORK_DIR="$(mktemp -d /tmp/rosetta-bench.XXXXXX)"
PG_DATA="$WORK_DIR/pgdata"
PG_LOG="$WORK_DIR/postgres.log"
SERVER_LOG="$WORK_DIR/server.log"
if is_root; then
    chown postgres: "$WORK_DIR"
fi
chmod 0755 "$WORK_DIR"

PG_PORT="$(free_port)"
log "initialising a PostgreSQL cluster in $PG_DATA (port $PG_PORT)"
as_pg "$PG_BIN/initdb" -D "$PG_DATA" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 \
    >"$WORK_DIR/initdb.log" 2>&1 || { cat "$WORK_DIR/initdb.log" >&2; die "initdb failed"; }
PG_STARTED=1
if ! as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -l "$PG_LOG" -w -t 60 \
    -o "-p $PG_PORT -k $WORK_DIR -c listen_addresses=127.0.0.1 -c max_connections=200" \
    start >/dev/null; then
    tail -n 30 "$PG_LOG" >&2 || true
    die "PostgreSQL did not start"
fi
"$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres \
    -c "CREATE DATABASE rosetta" >&2
PG_VERSION="$("$PG_BIN/psql" -X -tA -h 127.0.0.1 -p "$PG_PORT" -U postgres -d rosetta \
    -c "SHOW server_version")"

# ---------------------------------------------------------------------------------------------
# 4. The server.

API_PORT="$(free_port)"
while [[ "$API_PORT" == "$PG_PORT" ]]; do API_PORT="$(free_port)"; done
API_KEY="$(random_hex 16)"
BASE="http://127.0.0.1:$API_PORT"
AUTH="Authorization: Bearer $API_KEY"

log "starting $SERVER_BIN on 127.0.0.1:$API_PORT"
DATABASE_URL="postgres://postgres@127.0.0.1:$PG_PORT/rosetta" \
SECRET_KEY="$(random_hex 32)" \
API_KEYS="$API_KEY" \
HOST=127.0.0.1 \
PORT="$API_PORT" \
APP_ENV=development \
LOG_LEVEL=warn \
RATE_LIMIT_PER_SECOND=0 \
    "${OWN_SESSION[@]}" "$SERVER_BIN" serve >"$SERVER_LOG" 2>&1 &
SERVER_PID=$!

ready=0
for _ in $(seq 1 600); do
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
        break
    fi
    if [[ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$BASE/api/v1/health" || true)" == 200 ]]; then
        ready=1
        break
    fi
    sleep 0.1
done
if (( ! ready )); then
    log "the server did not answer GET /api/v1/health with 200 within 60 s; its log:"
    cat "$SERVER_LOG" >&2
    log "last health answer: $(curl -s --max-time 2 "$BASE/api/v1/health" || echo '(no answer)')"
    die "server not ready"
fi
log "server ready (pid $SERVER_PID, RSS $(mib "$(proc_kib "$SERVER_PID" VmRSS)") MiB)"

# ---------------------------------------------------------------------------------------------
# 5. Seed data through the API.

# POSTs JSON $2 to path $1; prints the id of the created row. Dies on anything but 201.
api_create() {
    local path="$1" body="$2" out code id
    out="$WORK_DIR/create.json"
    code="$(curl -sS -o "$out" -w '%{http_code}' -X POST "$BASE$path" \
        -H "$AUTH" -H 'Content-Type: application/json' --data-binary "$body")" \
        || die "POST $path failed (curl)"
    if [[ "$code" != 201 ]]; then
        log "POST $path $body → $code: $(cat "$out")"
        die "seeding failed"
    fi
    id="$(grep -oE '"id"[[:space:]]*:[[:space:]]*[0-9]+' "$out" | head -n 1 | grep -oE '[0-9]+$' || true)"
    [[ -n "$id" ]] || die "POST $path: no id in $(cat "$out")"
    printf '%s\n' "$id"
}

log "seeding $N_SOURCES sources, $N_DESTINATIONS destinations, $N_PIPELINES pipelines"
SOURCE_IDS=()
for i in $(seq 1 "$N_SOURCES"); do
    SOURCE_IDS+=("$(api_create /api/v1/sources "$(printf \
        '{"name":"src-%d","pg_host":"127.0.0.1","pg_port":5432,"pg_database":"db","pg_username":"u","pg_password":"pw","publication_name":"pub_%d","replication_id":%d}' \
        "$i" "$i" "$i")")")
done
DEST_IDS=()
for i in $(seq 1 "$N_DESTINATIONS"); do
    DEST_IDS+=("$(api_create /api/v1/destinations "$(printf \
        '{"name":"dst-%d","snowflake_account":"acct-1"}' "$i")")")
done
for i in $(seq 1 "$N_PIPELINES"); do
    s="${SOURCE_IDS[$(( (i - 1) % N_SOURCES ))]}"
    d="${DEST_IDS[$(( (i - 1) % N_DESTINATIONS ))]}"
    api_create /api/v1/pipelines "$(printf '{"name":"pipe-%d","source_id":%s,"destination_id":%s}' \
        "$i" "$s" "$d")" >/dev/null
done

MIN_ID="$(printf '%s\n' "${SOURCE_IDS[@]}" | sort -n | head -n 1)"
MAX_ID="$(printf '%s\n' "${SOURCE_IDS[@]}" | sort -n | tail -n 1)"
ONE_ID="${SOURCE_IDS[$(( N_SOURCES / 2 ))]}"

# Sanity checks of what the scenarios will hit.
code="$(curl -s -o "$WORK_DIR/one.json" -w '%{http_code}' -H "$AUTH" "$BASE/api/v1/sources/$ONE_ID")"
[[ "$code" == 200 ]] || die "GET /api/v1/sources/$ONE_ID → $code: $(cat "$WORK_DIR/one.json")"
code="$(curl -s -D "$WORK_DIR/list.headers" -o "$WORK_DIR/list.json" -w '%{http_code}' -H "$AUTH" \
    "$BASE/api/v1/pipelines?limit=100")"
[[ "$code" == 200 ]] || die "GET /api/v1/pipelines?limit=100 → $code: $(cat "$WORK_DIR/list.json")"
listed="$(grep -o '"pipeline_metadata"' "$WORK_DIR/list.json" | wc -l)"
[[ "$listed" == "$N_PIPELINES" ]] \
    || log "warning: GET /api/v1/pipelines?limit=100 returned $listed pipelines with metadata, expected $N_PIPELINES"
LIST_BYTES="$(wc -c <"$WORK_DIR/list.json")"
log "GET one source: $(wc -c <"$WORK_DIR/one.json") bytes; list of 100 pipelines: $LIST_BYTES bytes"

# ---------------------------------------------------------------------------------------------
# 6. pgbench ceiling: the same single-row SELECT as GET one source.

PGB_SCRIPT="$WORK_DIR/select_source.sql"
printf '\\set id random(%s, %s)\nSELECT * FROM sources WHERE id = :id;\n' "$MIN_ID" "$MAX_ID" \
    >"$PGB_SCRIPT"
DURATION_S="$(duration_seconds "$DURATION")"
WARMUP_S="$(duration_seconds "$WARMUP")"
declare -A PGB_TPS PGB_CPU_CLIENT PGB_CPU_REST
TIMEFORMAT='%U %S'
for c in "${CONCURRENCIES[@]}"; do
    pgb=("$PGBENCH" -h 127.0.0.1 -p "$PG_PORT" -U postgres -n -f "$PGB_SCRIPT" -M prepared
        -c "$c" -j 2)
    if (( WARMUP_S > 0 )); then
        "${pgb[@]}" -T "$WARMUP_S" rosetta >/dev/null 2>&1 || true
    fi
    log "pgbench -c $c -j 2 -T $DURATION_S"
    sys0="$(sys_ticks)"
    t0="$(date +%s.%N)"
    { time "${pgb[@]}" -T "$DURATION_S" rosetta >"$WORK_DIR/pgbench-$c.out" 2>&1 ; } \
        2>"$WORK_DIR/pgbench-$c.time" || { cat "$WORK_DIR/pgbench-$c.out" >&2; die "pgbench failed"; }
    t1="$(date +%s.%N)"
    sys1="$(sys_ticks)"
    wall="$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')"
    client="$(awk -v hz="$CLK_TCK" '{ printf "%.0f", ($1 + $2) * hz }' "$WORK_DIR/pgbench-$c.time")"
    PGB_CPU_CLIENT[$c]="$(pct "$client" "$wall")"
    # The backends exit with pgbench, so count them as the rest of the machine's busy time.
    PGB_CPU_REST[$c]="$(pct $(( ${sys1% *} - ${sys0% *} - client )) "$wall")"
    # PostgreSQL 15: "tps = 12345.678901 (without initial connection time)".
    PGB_TPS[$c]="$(awk '/^tps = .*without initial connection time/ { printf "%.0f", $3 }' \
        "$WORK_DIR/pgbench-$c.out")"
    [[ -n "${PGB_TPS[$c]}" ]] || { cat "$WORK_DIR/pgbench-$c.out" >&2; die "no TPS in pgbench output"; }
    failed="$(awk '/^number of failed transactions:/ { print $5 }' "$WORK_DIR/pgbench-$c.out")"
    [[ -z "$failed" || "$failed" == 0 ]] || die "pgbench: $failed failed transactions"
done

# ---------------------------------------------------------------------------------------------
# 7. wrk scenarios.

declare -A RPS P50 P99 NON2XX ERRS RSS_PEAK RSS_NOW CPU_WRK CPU_SRV CPU_PG CPU_OTHER CPU_IDLE
ROWS=()
RUN_NO=0

# run_wrk <key> <concurrency> <duration> <method-label> <url> [wrk args...]
# Runs wrk; for measured runs (key non-empty) records its figures, the server's RSS and CPU.
run_wrk() {
    local key="$1" c="$2" dur="$3" url="$4"
    shift 4
    local out="$WORK_DIR/wrk-${key:-warmup}-$c.out"
    local srv0 pg0 srv1 pg1 sys0 sys1 t0 t1 wrk_cpu
    srv0="$(proc_ticks "$SERVER_PID")"
    pg0="$(pg_ticks "$PG_DATA")"
    sys0="$(sys_ticks)"
    t0="$(date +%s.%N)"
    # bash's `time` reports the user+system seconds of wrk (a child of this shell).
    local TIMEFORMAT='%U %S'
    { time wrk -t "$THREADS" -c "$c" -d "$dur" --latency --timeout 5s "$@" "$url" >"$out" 2>&1 ; } \
        2>"$out.time" || { cat "$out" >&2; die "wrk failed ($key c=$c)"; }
    t1="$(date +%s.%N)"
    sys1="$(sys_ticks)"
    srv1="$(proc_ticks "$SERVER_PID")"
    pg1="$(pg_ticks "$PG_DATA")"
    kill -0 "$SERVER_PID" 2>/dev/null || { cat "$SERVER_LOG" >&2; die "the server died during $key c=$c"; }
    [[ -n "$key" ]] || return 0

    local id="$key/$c"
    RPS[$id]="$(awk '/^Requests\/sec:/ { printf "%.0f", $2 }' "$out")"
    P50[$id]="$(to_ms "$(awk '/Latency Distribution/ { f = 1 } f && $1 == "50%" { print $2; exit }' "$out")")"
    P99[$id]="$(to_ms "$(awk '/Latency Distribution/ { f = 1 } f && $1 == "99%" { print $2; exit }' "$out")")"
    NON2XX[$id]="$(awk '/Non-2xx or 3xx responses:/ { print $NF }' "$out")"
    NON2XX[$id]="${NON2XX[$id]:-0}"
    ERRS[$id]="$(awk '/Socket errors:/ { gsub(",", ""); print $4 + $6 + $8 + $10 }' "$out")"
    ERRS[$id]="${ERRS[$id]:-0}"
    RSS_PEAK[$id]="$(proc_kib "$SERVER_PID" VmHWM)"
    RSS_NOW[$id]="$(proc_kib "$SERVER_PID" VmRSS)"
    local wall
    wall="$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')"
    wrk_cpu="$(awk -v hz="$CLK_TCK" '{ printf "%.0f", ($1 + $2) * hz }' "$out.time")"
    CPU_WRK[$id]="$(pct "$wrk_cpu" "$wall")"
    CPU_SRV[$id]="$(pct $(( srv1 - srv0 )) "$wall")"
    CPU_PG[$id]="$(pct $(( pg1 - pg0 )) "$wall")"
    # Everything else that ran on the machine meanwhile (other builds or tests skew the figures).
    local busy=$(( ${sys1% *} - ${sys0% *} )) idle=$(( ${sys1#* } - ${sys0#* } ))
    CPU_OTHER[$id]="$(pct $(( busy - wrk_cpu - (srv1 - srv0) - (pg1 - pg0) )) "$wall")"
    CPU_IDLE[$id]="$(pct "$idle" "$wall")"
    [[ -n "${RPS[$id]}" ]] || { cat "$out" >&2; die "no Requests/sec in wrk output ($key c=$c)"; }
    log "$(printf '%-14s c=%-3s %8s req/s  p50 %7s ms  p99 %7s ms  non-2xx %s  socket errors %s  RSS %s MiB (peak %s)  CPU wrk %s server %s postgres %s other %s idle %s' \
        "$key" "$c" "${RPS[$id]}" "${P50[$id]}" "${P99[$id]}" "${NON2XX[$id]}" "${ERRS[$id]}" \
        "$(mib "${RSS_NOW[$id]}")" "$(mib "${RSS_PEAK[$id]}")" "${CPU_WRK[$id]}" "${CPU_SRV[$id]}" "${CPU_PG[$id]}" "${CPU_OTHER[$id]}" "${CPU_IDLE[$id]}")"
    ROWS+=("$id")
}

# scenario <key> <url> [wrk args...]: warm-up then measured run at each concurrency.
scenario() {
    local key="$1" url="$2"
    shift 2
    local c
    for c in "${CONCURRENCIES[@]}"; do
        if (( WARMUP_S > 0 )); then
            run_wrk "" "$c" "$WARMUP" "$url" "$@"
        fi
        run_wrk "$key" "$c" "$DURATION" "$url" "$@"
    done
}

# Each POST run (warm-ups included) needs its own name prefix (names are unique); the Lua
# script reads it and the API key from the environment.
post_scenario() {
    local c
    export BENCH_API_KEY="$API_KEY"
    for c in "${CONCURRENCIES[@]}"; do
        if (( WARMUP_S > 0 )); then
            RUN_NO=$(( RUN_NO + 1 ))
            export BENCH_NAME_PREFIX="bench-$$-r$RUN_NO"
            run_wrk "" "$c" "$WARMUP" "$BASE/api/v1/sources" -s "$LUA_POST"
        fi
        RUN_NO=$(( RUN_NO + 1 ))
        export BENCH_NAME_PREFIX="bench-$$-r$RUN_NO"
        run_wrk post_source "$c" "$DURATION" "$BASE/api/v1/sources" -s "$LUA_POST"
    done
}

log "wrk: $THREADS threads, $DURATION per run (warm-up $WARMUP)"
scenario get_source "$BASE/api/v1/sources/$ONE_ID" -H "$AUTH"
scenario get_pipelines "$BASE/api/v1/pipelines?limit=100" -H "$AUTH"
post_scenario

# ---------------------------------------------------------------------------------------------
# 8. Report.

GIT_COMMIT="$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)"
if [[ -n "$(git -C "$REPO" status --porcelain 2>/dev/null || true)" ]]; then
    GIT_COMMIT="$GIT_COMMIT (with uncommitted changes)"
fi
CPU_MODEL="$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)"
label() {
    case "$1" in
        get_source) echo "GET /api/v1/sources/{id}" ;;
        get_pipelines) echo "GET /api/v1/pipelines?limit=100" ;;
        post_source) echo "POST /api/v1/sources" ;;
    esac
}

ALL_PASS=1
GET_NON2XX=0
PEAK_KIB=0
for id in "${ROWS[@]}"; do
    (( RSS_PEAK[$id] > PEAK_KIB )) && PEAK_KIB=${RSS_PEAK[$id]}
    if [[ "$id" == get_* ]] && (( NON2XX[$id] > 0 || ERRS[$id] > 0 )); then
        GET_NON2XX=1
    fi
done

{
    echo "## Rosetta benchmark"
    echo
    echo "- machine: $(nproc) CPUs, ${CPU_MODEL:-unknown}; load from wrk on 127.0.0.1 (same machine)"
    echo "- commit: $GIT_COMMIT; $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "- PostgreSQL $PG_VERSION (default settings, max_connections=200), $(wrk -v 2>&1 | head -n 1 | cut -d' ' -f1-2)"
    echo "- data: $N_SOURCES sources, $N_DESTINATIONS destinations, $N_PIPELINES pipelines (list response $LIST_BYTES bytes)"
    echo "- wrk: $THREADS threads, --latency, $DURATION per run after a $WARMUP warm-up"
    echo
    echo "| scenario | concurrency | req/s | p50 | p99 | non-2xx | RSS peak | RSS now |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|"
    for id in "${ROWS[@]}"; do
        key="${id%/*}"
        c="${id##*/}"
        non2xx="${NON2XX[$id]}"
        (( ERRS[$id] > 0 )) && non2xx="$non2xx (+${ERRS[$id]} socket errors)"
        printf '| %s | %s | %s | %s ms | %s ms | %s | %s MiB | %s MiB |\n' \
            "$(label "$key")" "$c" "${RPS[$id]}" "${P50[$id]}" "${P99[$id]}" "$non2xx" \
            "$(mib "${RSS_PEAK[$id]}")" "$(mib "${RSS_NOW[$id]}")"
    done
    echo
    echo "RSS peak is the server's VmHWM (highest RSS since start) after the run; RSS now its VmRSS."
    echo
    echo "| pgbench \`SELECT * FROM sources WHERE id = :id\` (-M prepared, -j 2) | concurrency | TPS | GET one source ÷ pgbench | CPU pgbench | CPU postgres + rest |"
    echo "|---|---:|---:|---:|---:|---:|"
    for c in "${CONCURRENCIES[@]}"; do
        ratio="$(awk -v a="${RPS["get_source/$c"]}" -v b="${PGB_TPS[$c]}" 'BEGIN { printf "%.2f", a / b }')"
        printf '| pgbench | %s | %s | %s | %s | %s |\n' "$c" "${PGB_TPS[$c]}" "$ratio" \
            "${PGB_CPU_CLIENT[$c]}" "${PGB_CPU_REST[$c]}"
    done
    echo
    echo "CPU during each measured run (100% = one core; the machine has $(nproc) × 100%);"
    echo "\"other\" is every other process on the machine (a busy neighbour skews the figures):"
    echo
    echo "| scenario | concurrency | wrk | server | postgres | other | idle |"
    echo "|---|---:|---:|---:|---:|---:|---:|"
    for id in "${ROWS[@]}"; do
        printf '| %s | %s | %s | %s | %s | %s | %s |\n' "$(label "${id%/*}")" "${id##*/}" \
            "${CPU_WRK[$id]}" "${CPU_SRV[$id]}" "${CPU_PG[$id]}" "${CPU_OTHER[$id]}" "${CPU_IDLE[$id]}"
    done
    echo
    echo "| target | value | result |"
    echo "|---|---:|---|"
    for c in "${CONCURRENCIES[@]}"; do
        ratio="$(awk -v a="${RPS["get_source/$c"]}" -v b="${PGB_TPS[$c]}" 'BEGIN { printf "%.2f", a / b }')"
        ok="$(awk -v r="$ratio" -v t="$TARGET_RATIO" 'BEGIN { print (r >= t) ? 1 : 0 }')"
        (( ok )) || ALL_PASS=0
        printf '| GET one source req/s ≥ %s × pgbench TPS at c=%s | %s | %s |\n' \
            "$TARGET_RATIO" "$c" "$ratio" "$(passfail "$ok")"
    done
    p99="${P99["get_source/32"]}"
    ok="$(awk -v p="$p99" -v t="$TARGET_P99_MS" 'BEGIN { print (p <= t) ? 1 : 0 }')"
    (( ok )) || ALL_PASS=0
    printf '| GET one source p99 ≤ %s ms at c=32 | %s ms | %s |\n' "$TARGET_P99_MS" "$p99" "$(passfail "$ok")"
    ok="$(awk -v k="$PEAK_KIB" -v t="$TARGET_RSS_MIB" 'BEGIN { print (k / 1024 <= t) ? 1 : 0 }')"
    (( ok )) || ALL_PASS=0
    printf '| server RSS peak ≤ %s MiB | %s MiB | %s |\n' "$TARGET_RSS_MIB" "$(mib "$PEAK_KIB")" "$(passfail "$ok")"
    ok=$(( GET_NON2XX == 0 ))
    (( ok )) || ALL_PASS=0
    printf '| no non-2xx answers or socket errors on GET | %s | %s |\n' \
        "$( (( ok )) && echo none || echo some)" "$(passfail "$ok")"
    echo
    echo "Overall: $(passfail "$ALL_PASS")"
} >"$WORK_DIR/report.md"

mkdir -p "$REPORT_DIR"
cp "$WORK_DIR/report.md" "$REPORT"
echo
cat "$REPORT"
echo
log "report written to $REPORT; took $(( SECONDS - START_SECONDS )) s"

if (( GET_NON2XX )); then
    for id in "${ROWS[@]}"; do
        [[ "$id" == get_* ]] || continue
        log "$id: ${NON2XX[$id]} non-2xx, ${ERRS[$id]} socket errors"
    done
    log "last lines of the server log:"
    tail -n 30 "$SERVER_LOG" >&2 || true
    die "GET scenarios had non-2xx answers or socket errors"
fi
if (( ! ALL_PASS )) && [[ "${BENCH_STRICT:-0}" == 1 ]]; then
    exit 3
fi
