# Private PostgreSQL and redis-server processes for the service example's
# scripts (run.sh, bench.sh): sourced, not run. Each listens on a free
# loopback port (never 5432 or 6379, somebody else's servers), keeps its
# files in "$work", and is stopped by stop_servers.
#
# Needs PostgreSQL's binaries (initdb, pg_ctl, postgres; Debian's
# /usr/lib/postgresql/<version>/bin is searched: apt-get install postgresql),
# redis-server for start_redis, and python3 (it picks free ports).

die() {
    echo "$(basename "$0"): $*" >&2
    exit 1
}

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

# A temporary directory for the servers' files: sets $work.
make_workdir() {
    command -v python3 >/dev/null || die "python3 is missing (it picks free ports)"
    work="$(mktemp -d "${TMPDIR:-/tmp}/service-$1.XXXXXX")"
    as_pg=()
    if [ "$(id -u)" -eq 0 ]; then
        # PostgreSQL refuses to run as root.
        id postgres >/dev/null 2>&1 || die "running as root needs the postgres user (the postgresql package creates it)"
        chown postgres "$work"
        as_pg=(runuser -u postgres --)
    fi
    redis_pid=""
}

# initdb + postgres in "$work": sets $DATABASE_URL.
start_postgres() {
    PG_BIN="$(pg_bin_dir)" || die "PostgreSQL is missing: apt-get install postgresql"
    local port
    port="$(free_port)"
    "${as_pg[@]}" "$PG_BIN/initdb" -D "$work/data" -U postgres --auth=trust -E UTF8 --locale=C \
        --no-sync >"$work/initdb.log" 2>&1 || die "initdb failed: $(tail -5 "$work/initdb.log")"
    "${as_pg[@]}" "$PG_BIN/pg_ctl" -D "$work/data" -l "$work/postgres.log" -w -t 30 \
        -o "-p $port -k $work -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200" \
        start >/dev/null || die "postgres did not start: $(tail -5 "$work/postgres.log")"
    DATABASE_URL="postgres://postgres@127.0.0.1:$port/postgres"
}

# redis-server in "$work": sets $REDIS_URL and $redis_port.
start_redis() {
    command -v redis-server >/dev/null || die "redis-server is missing: apt-get install redis-server redis-tools"
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
}

# Stops what start_postgres and start_redis started and removes "$work".
stop_servers() {
    if [ -n "${redis_pid:-}" ]; then
        kill "$redis_pid" 2>/dev/null || true
        wait "$redis_pid" 2>/dev/null || true
    fi
    if [ -f "$work/data/postmaster.pid" ]; then
        "${as_pg[@]}" "$PG_BIN/pg_ctl" -D "$work/data" -m immediate stop >/dev/null 2>&1 || true
    fi
    rm -rf "$work"
}
