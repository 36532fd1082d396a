#!/usr/bin/env bash
# How fast a rollback takes effect, and how fast a bad canary is caught.
#
# 1. Rollback latency: from just before the `rollback` API call is made to the last
#    request that reaches the canary. A static
#    canary (a sample-app this script runs, so it outlives the rollback) reports when
#    its latest request arrived (/stats); wrk keeps 32 connections busy meanwhile.
# 2. Detection time: `rampart demo` rolls back a v3 that fails 10 % of requests at
#    200 requests/s with the default analysis settings; its deployment record says
#    when the canary first took traffic and when the rollback was decided.
#
# Usage: bench/rollback.sh [RUNS]   (needs wrk: apt-get install -y wrk)
#        RAMPART_BIN=path/to/rampart skips the release build (bench/lib.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-10}
DEMO_RUNS=${DEMO_RUNS:-3}

command -v wrk >/dev/null || { echo "wrk is needed: apt-get install -y wrk" >&2; exit 2; }
source bench/lib.sh
start_static_bench_service

wrk -t2 -c32 -d$((RUNS * 8 + 20))s "http://127.0.0.1:$ROUTER/" >"$WORK/wrk.log" 2>&1 & PIDS+=($!)
sleep 1

LATENCIES=()
for i in $(seq "$RUNS"); do
    ID=$(deploy_canary "$i")
    sleep 2   # the canary takes half the traffic meanwhile
    T0=$(now_ms)
    api -X POST "http://127.0.0.1:$API/api/v1/services/bench/rollback" -d '{"reason":"bench"}' >/dev/null
    sleep 1
    LAST=$(curl -sf "http://127.0.0.1:$CANARY/stats" | json 'd["last_request_unix_ms"]')
    LATENCIES+=($((LAST - T0)))
    wait_state "$ID" rolled_back
done

DETECT=()
for _ in $(seq "$DEMO_RUNS"); do
    LINE=$("$BIN" demo --exit-when-done --api-listen 127.0.0.1:0 --service-listen 127.0.0.1:0 | grep 'rollback decided' || true)
    DETECT+=("$(echo "$LINE" | sed -E 's/.*decided ([0-9.]+)s.*/\1/')")
done

python3 - "${LATENCIES[*]}" "${DETECT[*]}" <<'PY'
import statistics, sys
lat = [int(x) for x in sys.argv[1].split()]
det = [float(x) for x in sys.argv[2].split() if x]
print("| measure | runs | median | max | target |")
print("|---|---|---|---|---|")
print(f"| rollback call → last request at the canary | {len(lat)} | {statistics.median(lat)} ms | {max(lat)} ms | ≤ 100 ms |")
if det:
    print(f"| 10 % errors at 200 req/s → rollback decided (demo, default judge) | {len(det)} | {statistics.median(det):.1f} s | {max(det):.1f} s | — |")
PY
