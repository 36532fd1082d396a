#!/usr/bin/env bash
# What telemetry collection costs: rampart serves 10 process-backend services of 2
# sample-app instances each at the default 5 s interval, with light traffic to
# every service; the CPU the collections used (rampart_telemetry_collection_cpu_
# seconds_total, the collecting thread's own CPU time, series upkeep included) is
# read from /metrics at the start and end of the run.
# Target: at most 0.5 % of one core.
#
# Usage: bench/telemetry.sh [SECONDS]   (RAMPART_BIN=path skips the release build)
set -euo pipefail
[[ -n "${TRACE:-}" ]] && set -x
cd "$(dirname "$0")/.."
SECONDS_RUN=${1:-120}
SERVICES=${SERVICES:-10}
if [[ -z "${RAMPART_BIN:-}" ]]; then
    cargo build --release -q -p rampart
    RAMPART_BIN=$PWD/target/release/rampart
fi
WORK=$(mktemp -d)
PID=
cleanup() {
    [[ -n "$PID" ]] && kill "$PID" 2>/dev/null || true
    wait 2>/dev/null || true
    [[ -n "${KEEP:-}" ]] && cat "$WORK/log" >&2
    rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
API=$(free_port)
{
    printf '[server]\nlisten = "127.0.0.1:%s"\ndata_dir = "data"\n\n[telemetry]\ninterval = "5s"\n\n' "$API"
    for i in $(seq 1 "$SERVICES"); do
        printf '[[service]]\nname = "svc%s"\nlisten = "127.0.0.1:%s"\n[service.backend]\nkind = "process"\ncommand = "%s sample-app --listen 127.0.0.1:{port} --version {version}"\ninstances = 2\n\n' \
            "$i" "$(free_port)" "$RAMPART_BIN"
    done
} > "$WORK/rampart.toml"
(cd "$WORK" && exec "$RAMPART_BIN" serve --config rampart.toml >"$WORK/log" 2>&1) & PID=$!

scrape() { curl -sf "http://127.0.0.1:$API/metrics" || true; }
value() { awk -v name="$1" '$1 == name { print $2 }'; }
for _ in $(seq 1 300); do
    scrape | grep -q '^rampart_telemetry_collection_cpu_seconds_total ' && break
    sleep 0.2
done
ROUTERS=$(grep -o 'listen = "127.0.0.1:[0-9]*"' "$WORK/rampart.toml" | tail -n +2 | grep -o '[0-9]*"$' | tr -d '"')
START_CPU=$(scrape | value rampart_telemetry_collection_cpu_seconds_total)
START=$(date +%s.%N)
END_AT=$(( $(date +%s) + SECONDS_RUN ))
while (( $(date +%s) < END_AT )); do
    for port in $ROUTERS; do curl -s -o /dev/null "http://127.0.0.1:$port/" || true; done
    sleep 1
done
TEXT=$(scrape)
END_CPU=$(echo "$TEXT" | value rampart_telemetry_collection_cpu_seconds_total)
LAST=$(echo "$TEXT" | value rampart_telemetry_collection_seconds)
INSTANCES=$(echo "$TEXT" | grep -c '^rampart_instance_up{' || true)
END=$(date +%s.%N)
python3 - "$START_CPU" "$END_CPU" "$START" "$END" "$LAST" "$INSTANCES" "$SERVICES" <<'PY'
import sys
c0, c1, t0, t1, last = map(float, sys.argv[1:6])
instances, services = int(sys.argv[6]), int(sys.argv[7])
wall = t1 - t0
cpu = c1 - c0
collections = wall / 5
print(f"services {services}, instances {instances}, interval 5s, run {wall:.0f} s")
print(f"collection CPU: {cpu*1000:.1f} ms in {wall:.0f} s = {cpu/wall*100:.3f} % of one core"
      f" ({cpu/collections*1000:.2f} ms per collection); last collection took {last*1000:.2f} ms wall")
print("target: <= 0.5 % of one core:", "met" if cpu / wall <= 0.005 else "NOT met")
PY
