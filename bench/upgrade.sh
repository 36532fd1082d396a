#!/usr/bin/env bash
# Graceful upgrade under load: what clients see while `rampart serve --upgrade`
# takes the listening sockets, the instances and the data-dir lock over from the
# running rampart (docs/OPERATIONS.md, "Upgrading rampart without downtime").
#
# One process service (2 sample-app instances) behind rampart's router, on
# 127.0.0.1. For each load, a baseline run without a handover, then the same run
# with a handover 4 s in (the old process drains and exits while the load goes on):
#   1. 500 requests per second (`rampart load`, keep-alive): failures and p50/p95/p99;
#   2. full speed (wrk, 2 threads, 32 keep-alive connections): throughput, socket
#      errors, non-2xx answers and the latency distribution.
# Each handover must leave the instance pids unchanged; the script says so.
#
# Usage: bench/upgrade.sh [SECONDS]   (default 12 per run; RAMPART_BIN=path skips
#        the release build)
set -euo pipefail
[[ -n "${TRACE:-}" ]] && set -x
cd "$(dirname "$0")/.."
SECONDS_PER_RUN=${1:-12}
TARGET_DIR=${CARGO_TARGET_DIR:-target}
if [[ -z "${RAMPART_BIN:-}" ]]; then
    cargo build --release -q -p rampart
    RAMPART_BIN=$TARGET_DIR/release/rampart
fi
command -v wrk >/dev/null || { echo "wrk is needed for the full-speed runs" >&2; exit 1; }

WORK=$(mktemp -d)
cleanup() {
    local holder
    holder=$(cat "$WORK/data/rampart.lock" 2>/dev/null || true)
    [[ -n "$holder" ]] && kill "$holder" 2>/dev/null || true
    sleep 1
    # Instances outlive rampart: stop them through their pid files.
    for f in "$WORK"/data/run/*/*.pid; do
        [[ -e "$f" ]] && kill -KILL -- "-$(cut -d' ' -f1 "$f")" 2>/dev/null || true
    done
    wait 2>/dev/null || true
    [[ -n "${KEEP:-}" ]] && cat "$WORK/log" >&2
    rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
API=$(free_port)
ROUTER=$(free_port)
cat > "$WORK/rampart.toml" <<TOML
[server]
listen = "127.0.0.1:$API"
data_dir = "data"

[[service]]
name = "web"
listen = "127.0.0.1:$ROUTER"
[service.backend]
kind = "process"
command = "$RAMPART_BIN sample-app --listen 127.0.0.1:{port} --version {version}"
instances = 2
TOML

holder() { cat "$WORK/data/rampart.lock"; }
instance_pids() { cat "$WORK"/data/run/web/*.pid | cut -d' ' -f1 | sort | tr '\n' ' '; }
wait_serving() {
    for _ in $(seq 1 600); do
        curl -fs "http://127.0.0.1:$ROUTER/" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    echo "rampart did not come up" >&2
    exit 1
}

RAMPART_LOG=info "$RAMPART_BIN" serve --config "$WORK/rampart.toml" >>"$WORK/log" 2>&1 &
wait_serving

# Starts the successor now; returns once the old rampart has exited.
handover() {
    local old pids_before
    old=$(holder)
    pids_before=$(instance_pids)
    RAMPART_LOG=info "$RAMPART_BIN" serve --config "$WORK/rampart.toml" --upgrade >>"$WORK/log" 2>&1 &
    local started=$(date +%s.%N)
    while kill -0 "$old" 2>/dev/null; do sleep 0.05; done
    local ended=$(date +%s.%N)
    printf '   handover: old rampart %s exited %.2f s after the new one started; ' "$old" "$(echo "$ended - $started" | bc)"
    if [[ "$(instance_pids)" == "$pids_before" ]]; then
        echo "instance pids unchanged ($pids_before)"
    else
        echo "INSTANCE PIDS CHANGED: $pids_before -> $(instance_pids)"
    fi
}

run_rate() {
    local with=$1
    "$RAMPART_BIN" load "http://127.0.0.1:$ROUTER/" --rate 500 --duration "${SECONDS_PER_RUN}s" >"$WORK/load.out" 2>&1 &
    local load=$!
    if [[ "$with" == yes ]]; then sleep 4; handover; fi
    wait "$load"
    grep -E "^sent|VERSION|^v|^ *v1" "$WORK/load.out" | sed 's/^/   /'
}

run_wrk() {
    local with=$1
    wrk -t2 -c32 -d"${SECONDS_PER_RUN}s" --latency "http://127.0.0.1:$ROUTER/" >"$WORK/wrk.out" 2>&1 &
    local load=$!
    if [[ "$with" == yes ]]; then sleep 4; handover; fi
    wait "$load"
    grep -E "Requests/sec|Socket errors|Non-2xx|Latency |  50%|  90%|  99%|requests in" "$WORK/wrk.out" | sed 's/^/   /'
    grep -q "Socket errors\|Non-2xx" "$WORK/wrk.out" || echo "   no socket errors, no non-2xx answers"
}

echo "== 500 requests/s, ${SECONDS_PER_RUN}s, no handover (baseline)"
run_rate no
echo "== 500 requests/s, ${SECONDS_PER_RUN}s, handover at 4 s"
run_rate yes
echo "== full speed (wrk -t2 -c32), ${SECONDS_PER_RUN}s, no handover (baseline)"
run_wrk no
echo "== full speed (wrk -t2 -c32), ${SECONDS_PER_RUN}s, handover at 4 s"
run_wrk yes
