#!/usr/bin/env bash
# Runs the HTTP caching conformance suite (https://github.com/http-tests/cache-tests)
# against examples/http_proxy and prints our passed/total by test kind beside
# every cache the suite publishes results for, as a markdown table.
#
#   scripts/cache-tests.sh                      # npm http-cache-tests@0.4.5, installed in a scratch folder
#   CACHE_TESTS_DIR=/path/to/checkout scripts/cache-tests.sh   # a checkout (npm install run in it if needed)
#
# CACHE_TESTS_VERSION   npm version (default 0.4.5)
# CACHE_TESTS_MIN_REQUIRED=N  exit 1 when fewer than N required tests pass
# CACHE_TESTS_MIN_OPTIMAL=N   likewise for optimal tests
# CACHE_TESTS_RESULTS=FILE    keep our raw results (JSON: test id -> true/false/[kind, message])
# CACHE_TESTS_ID=ID           run one test and print its details instead
# CACHE_TESTS_PROFILE         cargo profile of the proxy (default release)
# PROXY_ARGS                  more arguments for http_proxy
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
scratch=$(mktemp -d "${TMPDIR:-/tmp}/cache-tests.XXXXXX")
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    rm -rf "$scratch"
}
trap cleanup EXIT

command -v node >/dev/null && command -v npm >/dev/null || {
    echo "cache-tests: node and npm are needed" >&2
    exit 2
}

# The suite: a checkout, or the npm release in the scratch folder.
if [[ -n "${CACHE_TESTS_DIR:-}" ]]; then
    suite=$(cd "$CACHE_TESTS_DIR" && pwd)
    label="repository checkout $(git -C "$suite" rev-parse --short HEAD 2>/dev/null || basename "$suite")"
    [[ -d "$suite/node_modules" ]] || (cd "$suite" && npm install --no-audit --no-fund --omit=dev --loglevel=error >&2)
else
    version=${CACHE_TESTS_VERSION:-0.4.5}
    label="npm http-cache-tests@$version"
    (cd "$scratch" && npm install --no-audit --no-fund --loglevel=error "http-cache-tests@$version" >&2)
    suite="$scratch/node_modules/http-cache-tests"
fi
# Its layout: test-engine/ in the repository, at the root in 0.4.5.
if [[ -f "$suite/test-engine/server/server.mjs" ]]; then
    engine="$suite/test-engine"
else
    engine="$suite"
fi

# The proxy, built alone.
profile=${CACHE_TESTS_PROFILE:-release}
(cd "$root" && cargo build --quiet --profile "$profile" -p http_proxy)
target_dir=${CARGO_TARGET_DIR:-$root/target}
[[ "$profile" == dev ]] && profile_dir=debug || profile_dir=$profile
proxy_bin="$target_dir/$profile_dir/http_proxy"

free_port() {
    node -e 'const s = require("net").createServer().listen(0, "127.0.0.1", () => { console.log(s.address().port); s.close() })'
}
wait_port() {
    for _ in $(seq 1 200); do
        if node -e 'require("net").connect(+process.argv[1], "127.0.0.1").on("connect", () => process.exit(0)).on("error", () => process.exit(1))' "$1"; then
            return 0
        fi
        sleep 0.05
    done
    echo "cache-tests: nothing listens on port $1" >&2
    return 1
}

server_port=$(free_port)
proxy_port=$(free_port)
(cd "$suite" && npm_config_protocol=http npm_config_port="$server_port" \
    npm_config_pidfile="$scratch/server.pid" exec node "$engine/server/server.mjs") \
    >"$scratch/server.log" 2>&1 &
pids+=($!)
# Memory only: a REDIS_URL of the environment is not this run's.
env -u REDIS_URL -u REDIS_CLUSTER_URLS "$proxy_bin" --listen "127.0.0.1:$proxy_port" \
    --upstream "http://127.0.0.1:$server_port" --namespace "cache-tests" ${PROXY_ARGS:-} \
    >"$scratch/proxy.log" 2>&1 &
pids+=($!)
wait_port "$server_port"
wait_port "$proxy_port"

# The client: npm_config_* as `npm run cli --base=...` would set them.
client() {
    (cd "$suite" && npm_config_base="http://127.0.0.1:$proxy_port" npm_package_config_base="" \
        npm_config_id="$1" npm_package_config_id="$1" node --no-warnings "$engine/cli.mjs")
}
if [[ -n "${CACHE_TESTS_ID:-}" ]]; then
    client "$CACHE_TESTS_ID"
    exit 0
fi
started=$(date +%s)
client "" >"$scratch/results.json"
elapsed=$(($(date +%s) - started))
[[ -n "${CACHE_TESTS_RESULTS:-}" ]] && cp "$scratch/results.json" "$CACHE_TESTS_RESULTS"

node "$root/scripts/cache-tests-summary.mjs" "$suite" "$scratch/results.json" "$label" | tee "$scratch/summary.txt"
echo "(the suite's client ran for ${elapsed}s)"

required=$(sed -n 's/^ours-required=//p' "$scratch/summary.txt")
optimal=$(sed -n 's/^ours-optimal=//p' "$scratch/summary.txt")
status=0
if [[ -n "${CACHE_TESTS_MIN_REQUIRED:-}" ]] && ((required < CACHE_TESTS_MIN_REQUIRED)); then
    echo "cache-tests: $required required tests passed, fewer than CACHE_TESTS_MIN_REQUIRED=$CACHE_TESTS_MIN_REQUIRED" >&2
    status=1
fi
if [[ -n "${CACHE_TESTS_MIN_OPTIMAL:-}" ]] && ((optimal < CACHE_TESTS_MIN_OPTIMAL)); then
    echo "cache-tests: $optimal optimal tests passed, fewer than CACHE_TESTS_MIN_OPTIMAL=$CACHE_TESTS_MIN_OPTIMAL" >&2
    status=1
fi
exit $status
