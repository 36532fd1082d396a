#!/usr/bin/env bash
# Autoscaler benchmarks.
#
# 1. Decision latency on the real binary: one process service of sample-app
#    instances (min 1, max 6, target 20 requests per second per instance, the
#    default 15 s sync), a step from 5 to 100 requests per second through its
#    router; reports the time from the step to the scale-up decision (target: within
#    one sync period) and to the new instances taking traffic (in the router's
#    stable set). ROUNDS steps (default 3), each after the service is back at 1.
# 2. The simulation (crates/autoscale-bench): known demand through the real core
#    code with a simulated clock, rampart reactive and predictive against the HPA
#    defaults and the original specification's rule.
#
# Usage: bench/autoscale.sh [ROUNDS]   (RAMPART_BIN=path skips the release build;
#        SIM_ONLY=1 runs only the simulation, LIVE_ONLY=1 only the live part)
set -euo pipefail
[[ -n "${TRACE:-}" ]] && set -x
cd "$(dirname "$0")/.."
ROUNDS=${1:-3}
TARGET_DIR=${CARGO_TARGET_DIR:-target}

if [[ -z "${LIVE_ONLY:-}" ]]; then
    echo "== simulation (rampart-autoscale-bench, release)"
    cargo build --release -q -p rampart-autoscale-bench
    "$TARGET_DIR/release/rampart-autoscale-bench"
fi
[[ -n "${SIM_ONLY:-}" ]] && exit 0

if [[ -z "${RAMPART_BIN:-}" ]]; then
    cargo build --release -q -p rampart
    RAMPART_BIN=$TARGET_DIR/release/rampart
fi
WORK=$(mktemp -d)
PID=
LOAD=
cleanup() {
    [[ -n "$LOAD" ]] && kill "$LOAD" 2>/dev/null || true
    [[ -n "$PID" ]] && kill "$PID" 2>/dev/null || true
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
instances = 1
[service.autoscale]
min = 1
max = 6
targets = [{ metric = "rps_per_instance", value = 20 }]
sync = "15s"
scale_down_stabilization = "30s"
TOML
(cd "$WORK" && exec "$RAMPART_BIN" serve --config rampart.toml >"$WORK/log" 2>&1) & PID=$!
for _ in $(seq 1 300); do
    [[ -s "$WORK/data/admin.token" ]] && curl -sf "http://127.0.0.1:$API/health/readiness" >/dev/null && break
    sleep 0.2
done
TOKEN=$(cat "$WORK/data/admin.token")
api() { curl -sf -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$API$1"; }
size() { api /api/v1/services/web/scaling?limit=1 | python3 -c 'import json,sys; print(json.load(sys.stdin)["stable"]["instances"])'; }
routed() { api /api/v1/services/web/traffic | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["stable"]["instances"]))'; }

echo "== decision latency on the real binary ($RAMPART_BIN), sync 15 s"
for round in $(seq 1 "$ROUNDS"); do
    "$RAMPART_BIN" load "http://127.0.0.1:$ROUTER/" --rate 5 >/dev/null 2>&1 & LOAD=$!
    # Back at one instance and quiet for a while.
    until [[ "$(size)" == 1 ]]; do sleep 1; done
    sleep 20
    kill "$LOAD"; wait "$LOAD" 2>/dev/null || true
    STEP=$(date +%s.%N)
    "$RAMPART_BIN" load "http://127.0.0.1:$ROUTER/" --rate 100 >/dev/null 2>&1 & LOAD=$!
    DECIDED=
    TRAFFIC=
    for _ in $(seq 1 1200); do
        now=$(date +%s.%N)
        if [[ -z "$DECIDED" && "$(size)" -gt 1 ]]; then DECIDED=$now; fi
        if [[ -z "$TRAFFIC" && "$(routed)" -gt 1 ]]; then TRAFFIC=$now; fi
        [[ -n "$DECIDED" && -n "$TRAFFIC" ]] && break
        sleep 0.1
    done
    # The decision's own time (its `decision.at`, taken before it acts) is the precise one.
    AT=$(api /api/v1/services/web/scaling?limit=50 | python3 -c '
import json, sys, datetime
view = json.load(sys.stdin)
ups = [d for d in view["decisions"] if d["status"] == "applied" and d["to"] > d["from"]]
print(ups[0]["decision"]["at"] / 1000 if ups else "")')
    python3 - "$STEP" "$AT" "${DECIDED:-nan}" "${TRAFFIC:-nan}" "$round" "$(size)" <<'PY'
import sys
step, at, seen, traffic = (float(x) if x else float("nan") for x in sys.argv[1:5])
print(f"round {sys.argv[5]}: load step 5 → 100 req/s; decision after {at - step:.1f} s"
      f" (target ≤ 15 s: {'met' if at - step <= 15 else 'NOT met'}); new instances taking traffic after"
      f" {traffic - step:.1f} s; size now {sys.argv[6]}")
PY
    kill "$LOAD"; wait "$LOAD" 2>/dev/null || true
    LOAD=
done
