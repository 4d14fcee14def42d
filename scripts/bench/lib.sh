# Helpers shared by scripts/bench.sh and scripts/bench-wal.sh. Source it after defining
# `log` and `die`; needs bash 4.4+.

is_root() { [[ "$(id -u)" == 0 ]]; }

# Runs a command as the postgres user when this script runs as root (clusters refuse root).
as_pg() {
    if is_root; then
        (cd / && runuser -u postgres -- "$@")
    else
        "$@"
    fi
}

CLK_TCK="$(getconf CLK_TCK)"

# A TCP port on 127.0.0.1 that nothing listens on (random, 20000-32767: below Linux's ephemeral
# range, so the client side of someone's connection does not hold it). Another process may still
# take it before we bind: the callers retry.
free_port() {
    local port
    for _ in $(seq 1 200); do
        port=$(( 20000 + RANDOM % 12768 ))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            printf '%s\n' "$port"
            return 0
        fi
    done
    die "no free port found"
}

random_hex() { head -c "$1" /dev/urandom | od -An -tx1 | tr -d ' \n'; }

# Seconds in a wrk-style duration: 10, 10s, 2m, 1h.
duration_seconds() {
    local d="$1"
    case "$d" in
        *h) echo $(( ${d%h} * 3600 )) ;;
        *m) echo $(( ${d%m} * 60 )) ;;
        *s) echo $(( ${d%s} )) ;;
        *) echo $(( d )) ;;
    esac
}

# Milliseconds from a wrk latency figure (123.45us, 1.23ms, 1.02s, 2.00m).
to_ms() {
    awk -v v="$1" 'BEGIN {
        if (v ~ /us$/)      { sub(/us$/, "", v); ms = v / 1000 }
        else if (v ~ /ms$/) { sub(/ms$/, "", v); ms = v + 0 }
        else if (v ~ /m$/)  { sub(/m$/, "", v);  ms = v * 60000 }
        else if (v ~ /s$/)  { sub(/s$/, "", v);  ms = v * 1000 }
        else                { print "nan"; exit }
        printf (ms < 1 ? "%.3f" : (ms < 100 ? "%.2f" : "%.0f")), ms
    }'
}

# A field of /proc/<pid>/status in KiB (VmHWM, VmRSS).
proc_kib() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status"; }

mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }

# user+system clock ticks of one process (fields 14 and 15 of /proc/<pid>/stat).
proc_ticks() {
    local stat
    stat="$(cat "/proc/$1/stat" 2>/dev/null)" || { echo 0; return; }
    stat="${stat##*) }"
    # shellcheck disable=SC2086
    set -- $stat
    echo $(( ${12} + ${13} ))
}

# Ticks of a cluster's postmaster and all its children (backends, background workers).
pg_ticks() {
    local pm total=0 child
    pm="$(head -n 1 "$1/postmaster.pid")"
    total=$(proc_ticks "$pm")
    for child in $(pgrep -P "$pm" || true); do
        total=$(( total + $(proc_ticks "$child") ))
    done
    echo "$total"
}

# Busy and idle ticks of the whole machine (first line of /proc/stat): "busy idle".
sys_ticks() {
    awk '$1 == "cpu" { print $2 + $3 + $4 + $7 + $8 + $9, $5 + $6; exit }' /proc/stat
}

# Percent of one core: <ticks> over <seconds> (differences of counters sampled at slightly
# different moments can come out a tick below zero: shown as 0).
pct() { awk -v t="$1" -v s="$2" -v hz="$CLK_TCK" 'BEGIN { p = (s > 0 ? 100 * t / hz / s : 0); printf "%.0f%%", (p < 0 ? 0 : p) }'; }

ensure_wrk() {
    command -v wrk >/dev/null && return
    command -v apt-get >/dev/null || die "wrk is missing and apt-get is not available; install wrk"
    local sudo=()
    is_root || sudo=(sudo)
    log "installing wrk"
    if ! "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y wrk >&2; then
        "${sudo[@]}" apt-get update >&2
        "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y wrk >&2
    fi
    command -v wrk >/dev/null || die "wrk still missing after apt-get install"
}

passfail() { if [[ "$1" == 1 ]]; then echo PASS; else echo FAIL; fi; }

# The server gets a session of its own (setsid), as a service under systemd or in a container
# would: left in the bench script's session it shares the load generator's scheduling group (the
# kernel's autogroup), and under full load PostgreSQL statements then stalled for up to 1 s
# (pg_stat_statements max; 7 ms with the server in its own session). setsid execs in place here
# (a background job of a script is no process group leader), so $! is the server's pid.
# Usage: "${OWN_SESSION[@]}" "$SERVER_BIN" serve &
OWN_SESSION=()
if command -v setsid >/dev/null; then
    OWN_SESSION=(setsid)
fi
