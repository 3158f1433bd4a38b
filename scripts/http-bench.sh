#!/usr/bin/env bash
# Throughput of examples/http_proxy with wrk (not run in CI): requests/s and
# latency of a cached response (GET /cached, max-age=60: served from the
# proxy's memory tier) beside the same run's uncached throughput (GET
# /nostore, no-store: every request goes through the proxy to the origin)
# and the origin alone (GET /cached straight to it), printed as a markdown
# table. The origin is examples/http_proxy/src/bin/origin.rs (hyper, 1 KiB
# bodies), so that it is not the bottleneck.
#
#   scripts/http-bench.sh
#
# BENCH_DURATION   seconds per wrk run (default 10)
# BENCH_THREADS    wrk threads (default 2)
# BENCH_CONNS      wrk connections (default 64)
# BENCH_BODY       body bytes (default 1024)
# BENCH_PROFILE    cargo profile of the binaries (default release)
# PROXY_ARGS       more arguments for http_proxy
#
# Everything runs on this machine: wrk, the proxy and the origin share its
# cores, so the numbers compare the rows with each other, not with other hosts.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
duration=${BENCH_DURATION:-10}
threads=${BENCH_THREADS:-2}
conns=${BENCH_CONNS:-64}
body=${BENCH_BODY:-1024}
profile=${BENCH_PROFILE:-release}

command -v wrk >/dev/null || {
    echo "http-bench: wrk is needed (apt-get install -y wrk)" >&2
    exit 2
}

scratch=$(mktemp -d "${TMPDIR:-/tmp}/http-bench.XXXXXX")
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    rm -rf "$scratch"
}
trap cleanup EXIT

(cd "$root" && cargo build --quiet --profile "$profile" -p http_proxy --bins)
target_dir=${CARGO_TARGET_DIR:-$root/target}
[[ "$profile" == dev ]] && profile_dir=debug || profile_dir=$profile
bin="$target_dir/$profile_dir"

# Starts a server on port 0 and prints the address it says it bound.
start() {
    local log=$1
    shift
    "$@" >"$log" 2>&1 &
    pids+=($!)
    for _ in $(seq 1 200); do
        if addr=$(sed -n 's|.*listening on http://\([0-9.:]*\).*|\1|p' "$log" | head -1) && [[ -n "$addr" ]]; then
            echo "$addr"
            return 0
        fi
        sleep 0.05
    done
    echo "http-bench: $1 did not start:" >&2
    cat "$log" >&2
    return 1
}

origin=$(start "$scratch/origin.log" "$bin/origin" --listen 127.0.0.1:0 --body "$body")
# Memory only: a REDIS_URL of the environment is not this run's.
proxy=$(start "$scratch/proxy.log" env -u REDIS_URL -u REDIS_CLUSTER_URLS \
    "$bin/http_proxy" --listen 127.0.0.1:0 --upstream "http://$origin" \
    --namespace http-bench ${PROXY_ARGS:-})

# The cached path is stored before the run; check what each path does.
status() {
    curl -s -o /dev/null -D - "http://$1$2" | tr -d '\r' | sed -n 's/^cache-status: //Ip' | head -1
}
if command -v curl >/dev/null; then
    status "$proxy" /cached >/dev/null
    echo "proxy /cached:  cache-status: $(status "$proxy" /cached)" >&2
    echo "proxy /nostore: cache-status: $(status "$proxy" /nostore)" >&2
fi

# wrk's summary as one row: requests/s, mean, p50, p99 latency.
measure() {
    local label=$1 url=$2 out
    out=$(wrk -t"$threads" -c"$conns" -d"${duration}s" --latency "$url")
    local rps mean p50 p99 errors
    rps=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
    mean=$(awk '$1 == "Latency" {print $2; exit}' <<<"$out")
    p50=$(awk '$1 == "50%" {print $2}' <<<"$out")
    p99=$(awk '$1 == "99%" {print $2}' <<<"$out")
    errors=$(awk '/Non-2xx|Socket errors/ {printf "%s ", $0}' <<<"$out")
    printf '| %s | %s | %s | %s | %s | %s |\n' "$label" "$rps" "$mean" "$p50" "$p99" "${errors:-none}"
}

echo "wrk -t$threads -c$conns -d${duration}s, $body-byte bodies, $(nproc) cores shared by wrk, proxy and origin"
echo
echo "| what | requests/s | mean latency | p50 | p99 | errors |"
echo "| --- | ---: | ---: | ---: | ---: | --- |"
measure "proxy, cached (hit from memory)" "http://$proxy/cached"
measure "proxy, uncached (no-store, to the origin)" "http://$proxy/nostore"
measure "origin alone" "http://$origin/cached"
