#!/usr/bin/env bash
# The service example's end-to-end benchmark: `bash examples/service/bench.sh`.
#
# Starts a private PostgreSQL and redis-server on free loopback ports (in a
# temporary directory, removed at exit), then runs the release build of the
# service once per cache mode and drives it with the load generator
# (src/bin/loadgen.rs: CONNECTIONS keep-alive connections, GET /users/{id}
# with random ids 1..=1000, WARMUP s not counted, then DURATION s counted).
# Prints one markdown table: mode, requests/s, p50, p99, SQL queries per
# request (the service's own counter), errors.
#
#   CONNECTIONS=16 DURATION=10 WARMUP=2 ROUNDS=1 bash examples/service/bench.sh
#
# Needs PostgreSQL's binaries (initdb, pg_ctl, postgres; Debian's
# /usr/lib/postgresql/<version>/bin is searched) and redis-server. Everything
# it starts listens on 127.0.0.1 only, and is stopped when it exits.
set -euo pipefail
cd "$(dirname "$0")/../.."

CONNECTIONS="${CONNECTIONS:-16}"
DURATION="${DURATION:-10}"
WARMUP="${WARMUP:-2}"
# Rounds of all the modes, interleaved: on a shared machine, the spread of
# a mode's rows shows how much the numbers move.
ROUNDS="${ROUNDS:-1}"

die() {
    echo "bench.sh: $*" >&2
    exit 1
}

# ---- binaries
pg_bin_dir() {
    local dir
    IFS=: read -r -a path_dirs <<<"$PATH"
    for dir in "${path_dirs[@]}" /usr/lib/postgresql/*/bin; do
        if [ -x "$dir/initdb" ] && [ -x "$dir/pg_ctl" ] && [ -x "$dir/postgres" ]; then
            echo "$dir"
            return 0
        fi
    done
    return 1
}
PG_BIN="$(pg_bin_dir)" || die "PostgreSQL is missing: apt-get install postgresql"
command -v redis-server >/dev/null || die "redis-server is missing: apt-get install redis-server"
command -v python3 >/dev/null || die "python3 is missing (it picks free ports)"

echo "building the service and the load generator (release)..." >&2
cargo build --release --quiet -p service --bins
target_dir="$(cargo metadata --format-version 1 --no-deps |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')"
SERVICE="$target_dir/release/service"
LOADGEN="$target_dir/release/loadgen"

# ---- a temporary directory and everything started in it, stopped at exit
work="$(mktemp -d "${TMPDIR:-/tmp}/service-bench.XXXXXX")"
redis_pid=""
service_pid=""
as_pg=()
if [ "$(id -u)" -eq 0 ]; then
    # PostgreSQL refuses to run as root.
    id postgres >/dev/null 2>&1 || die "running as root needs the postgres user (the package creates it)"
    chown postgres "$work"
    as_pg=(runuser -u postgres --)
fi
cleanup() {
    local pid
    for pid in $service_pid $redis_pid; do
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    if [ -f "$work/data/postmaster.pid" ]; then
        "${as_pg[@]}" "$PG_BIN/pg_ctl" -D "$work/data" -m immediate stop >/dev/null 2>&1 || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

# A free loopback port, never 5432 or 6379 (somebody else's servers).
free_port() {
    python3 -c '
import socket
while True:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    if port not in (5432, 6379):
        print(port)
        break'
}

# ---- PostgreSQL
pg_port="$(free_port)"
"${as_pg[@]}" "$PG_BIN/initdb" -D "$work/data" -U postgres --auth=trust -E UTF8 --locale=C \
    --no-sync >"$work/initdb.log" 2>&1 || die "initdb failed: $(tail -5 "$work/initdb.log")"
"${as_pg[@]}" "$PG_BIN/pg_ctl" -D "$work/data" -l "$work/postgres.log" -w -t 30 \
    -o "-p $pg_port -k $work -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200" \
    start >/dev/null || die "postgres did not start: $(tail -5 "$work/postgres.log")"
DATABASE_URL="postgres://postgres@127.0.0.1:$pg_port/postgres"

# ---- Redis
redis_port="$(free_port)"
redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no \
    --dir "$work" --logfile "$work/redis.log" &
redis_pid="$!"
for _ in $(seq 100); do
    redis-cli -p "$redis_port" ping >/dev/null 2>&1 && break
    sleep 0.1
done
redis-cli -p "$redis_port" ping >/dev/null 2>&1 || die "redis-server did not start"
REDIS_URL="redis://127.0.0.1:$redis_port"

# ---- one mode: start the service with the given variables, drive it, stop it
run_mode() {
    local label="$1"
    shift
    local slug
    slug="$(tr -c 'a-z0-9' '-' <<<"$label")"
    local out="$work/service-$slug.out" err="$work/service-$slug.err"
    # Created before the service starts, so that polling it never fails.
    : >"$out"
    redis-cli -p "$redis_port" flushall >/dev/null
    env -u REDIS_URL -u CACHE_DISABLED -u CACHE_MEMORY_CAPACITY \
        DATABASE_URL="$DATABASE_URL" LISTEN_ADDR=127.0.0.1:0 \
        DATABASE_POOL_SIZE="$CONNECTIONS" RUST_LOG=warn "$@" \
        "$SERVICE" >"$out" 2>"$err" &
    local pid="$!"
    service_pid="$pid"
    local addr=""
    for _ in $(seq 300); do
        addr="$(sed -n 's/^listening on //p' "$out")"
        [ -n "$addr" ] && break
        kill -0 "$pid" 2>/dev/null || die "the service ($label) exited: $(tail -5 "$err")"
        sleep 0.1
    done
    [ -n "$addr" ] || die "the service ($label) did not start"
    "$LOADGEN" --addr "$addr" --connections "$CONNECTIONS" --duration "$DURATION" \
        --warmup "$WARMUP" --ids 1000 --label "$label"
    kill "$pid"
    wait "$pid" 2>/dev/null || true
    service_pid=""
}

echo "| mode | requests/s | p50 | p99 | SQL queries per request | errors |"
echo "|---|---:|---:|---:|---:|---:|"
for round in $(seq "$ROUNDS"); do
    suffix=""
    [ "$ROUNDS" -gt 1 ] && suffix=", round $round"
    run_mode "no cache (CACHE_DISABLED=true)$suffix" CACHE_DISABLED=true
    run_mode "memory only$suffix" CACHE_MEMORY_CAPACITY=10000
    run_mode "write-through (memory + Redis)$suffix" REDIS_URL="$REDIS_URL"
    run_mode "storage only (Redis, CACHE_MEMORY_CAPACITY=0)$suffix" REDIS_URL="$REDIS_URL" \
        CACHE_MEMORY_CAPACITY=0
done
echo
echo "$CONNECTIONS connections, ${DURATION} s per mode after ${WARMUP} s of warm-up, ids 1..=1000;" \
    "service, load generator, PostgreSQL and Redis on the same machine ($(nproc) cores)."
