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

# shellcheck source=servers.sh
source examples/service/servers.sh
command -v redis-server >/dev/null || die "redis-server is missing: apt-get install redis-server"

echo "building the service and the load generator (release)..." >&2
cargo build --release --quiet -p service --bins
target_dir="$(cargo metadata --format-version 1 --no-deps |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')"
SERVICE="$target_dir/release/service"
LOADGEN="$target_dir/release/loadgen"

# ---- a temporary directory and everything started in it, stopped at exit
make_workdir bench
service_pid=""
cleanup() {
    if [ -n "$service_pid" ]; then
        kill "$service_pid" 2>/dev/null || true
        wait "$service_pid" 2>/dev/null || true
    fi
    stop_servers
}
trap cleanup EXIT
start_postgres
start_redis

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
