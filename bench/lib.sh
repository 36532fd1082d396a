# Shared set-up of the benchmarks that run the real binary (rollback, store, notify,
# incidents): the binary, a work dir cleaned up on exit, the API helpers, and for the
# rollback-style ones a static service whose stable (v1) and canary (v2) are
# sample-apps run by the script.
#
# Source it after `set -euo pipefail` and `cd` to the repository root. It sets BIN,
# WORK, PIDS, and (after start_static_bench_service) STABLE, CANARY, ROUTER, API,
# SERVE_PID and TOKEN; it defines free_port, json, now_ms, api,
# start_static_bench_service, wait_state and deploy_canary.

# RAMPART_BIN=path/to/rampart skips the release build.
if [ -z "${RAMPART_BIN:-}" ]; then
    cargo build --release -q -p rampart
    RAMPART_BIN=${CARGO_TARGET_DIR:-$PWD/target}/release/rampart
fi
BIN=$RAMPART_BIN
# shellcheck source=bench/lib/work.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/work.sh"
json() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }
now_ms() { date +%s%3N; }
api() { curl -sf -H "Authorization: Bearer $TOKEN" -H 'content-type: application/json' "$@"; }

# Starts the stable and canary sample-apps and `rampart serve` with service "bench"
# (static backend, one step at 50 % held for an hour, so only the script ends a
# rollout); waits until the API is ready and reads the admin token.
start_static_bench_service() {
    STABLE=$(free_port); CANARY=$(free_port); ROUTER=$(free_port); API=$(free_port)
    "$BIN" sample-app --listen "127.0.0.1:$STABLE" --version v1 >/dev/null 2>&1 & PIDS+=($!)
    "$BIN" sample-app --listen "127.0.0.1:$CANARY" --version v2 >/dev/null 2>&1 & PIDS+=($!)
    cat > "$WORK/rampart.toml" <<TOML
[server]
listen = "127.0.0.1:$API"
data_dir = "data"

[[service]]
name = "bench"
listen = "127.0.0.1:$ROUTER"
[service.backend]
kind = "static"
stable = ["127.0.0.1:$STABLE"]
[service.strategy]
steps = [{ weight = 50, hold = "1h" }]
progress_deadline = "1h"
[service.analysis]
judge = "threshold"
interval = "1h"
TOML
    "$BIN" serve --config "$WORK/rampart.toml" >"$WORK/serve.log" 2>&1 & PIDS+=($!)
    SERVE_PID=$!
    for _ in $(seq 100); do [ -s "$WORK/data/admin.token" ] && curl -sf "http://127.0.0.1:$API/health/ready" >/dev/null && break; sleep 0.1; done
    TOKEN=$(cat "$WORK/data/admin.token")
}

# Waits (up to 10 s) until deployment $1 is in state $2.
wait_state() {
    local state
    for _ in $(seq 200); do
        state=$(api "http://127.0.0.1:$API/api/v1/deployments/$1" | json 'd["summary"]["state"]')
        [ "$state" = "$2" ] && return 0; sleep 0.05
    done
    echo "deployment $1 did not reach $2 (last: $state)" >&2
    return 1
}

# Deploys v2 on the static canary and waits until it is progressing; prints the id.
deploy_canary() {
    local id
    id=$(api -X POST "http://127.0.0.1:$API/api/v1/services/bench/deployments" \
        -d "{\"version\":\"v2\",\"canary\":[\"127.0.0.1:$CANARY\"],\"reason\":\"bench $1\"}" | json 'd["id"]')
    wait_state "$id" progressing
    echo "$id"
}
