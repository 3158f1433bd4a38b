#!/usr/bin/env bash
# Runs the service example with nothing set up beforehand:
#
#   bash examples/service/run.sh            # memory cache
#   bash examples/service/run.sh --redis    # memory + Redis (write-through)
#   bash examples/service/run.sh --postgres-cache  # memory + PostgreSQL, no Redis
#
# Starts a private PostgreSQL (and with --redis a redis-server) on free
# loopback ports in a temporary directory, prints their URLs, then runs
# `cargo run -p service` with DATABASE_URL (and REDIS_URL) set. Other
# variables (LISTEN_ADDR, CACHE_*, RUST_LOG) pass through. Ctrl-C stops the
# service and the servers and removes the directory.
#
# Needs PostgreSQL's binaries (apt-get install postgresql; the server the
# package may start on 5432 is not used) and, with --redis, redis-server.
set -euo pipefail
cd "$(dirname "$0")/../.."

# shellcheck source=servers.sh
source examples/service/servers.sh

with_redis=false
postgres_cache=false
case "${1:-}" in
"") ;;
--redis) with_redis=true ;;
--postgres-cache) postgres_cache=true ;;
*) die "usage: bash examples/service/run.sh [--redis | --postgres-cache]" ;;
esac

make_workdir run
trap stop_servers EXIT
start_postgres
echo "DATABASE_URL=$DATABASE_URL" >&2
export DATABASE_URL
if $with_redis; then
    start_redis
    echo "REDIS_URL=$REDIS_URL" >&2
    export REDIS_URL
fi
if $postgres_cache; then
    # The cache's tables beside the app's, in the same database.
    export CACHE_POSTGRES_URL="$DATABASE_URL"
    echo "CACHE_POSTGRES_URL=$CACHE_POSTGRES_URL" >&2
fi
# Not exec: the trap must stop the servers when the service exits.
cargo run -p service
