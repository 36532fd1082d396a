#!/usr/bin/env bash
# How fast incident response acts: from the moment a rule's condition becomes true
# to the incident being open, and to its first action done (p50/p99 over TRIALS).
#
# A static service's only instance is a sample-app that answers after 1.5 s; the
# rule is `service.in_flight >= 8` with the action `freeze_deploys` (no guards in
# the way). Each trial sends 8 requests at once: the condition is true as soon as
# the 8th is in flight. t0 is taken just before they are sent (so the figures
# include sending them); the incident's `opened_at` and the action's timeline entry
# are rampart's own timestamps on the same clock, so polling adds nothing. The
# requests end after 1.5 s, the condition clears, and the incident resolves itself
# (`resolve_after = "500ms"`) before the next trial.
#
# Usage: bench/incidents.sh [TRIALS]   (RAMPART_BIN=path skips the release build)
set -euo pipefail
cd "$(dirname "$0")/.."
TRIALS=${1:-60}

# The binary, a work dir cleaned up on exit, free_port, json, now_ms, api.
source bench/lib.sh

APP=$(free_port); ROUTER=$(free_port); API=$(free_port)
"$BIN" sample-app --listen "127.0.0.1:$APP" --version v1 --latency-ms 1500 >/dev/null 2>&1 & PIDS+=($!)
cat > "$WORK/rampart.toml" <<TOML
[server]
listen = "127.0.0.1:$API"
data_dir = "data"

[[service]]
name = "bench"
listen = "127.0.0.1:$ROUTER"
[service.backend]
kind = "static"
stable = ["127.0.0.1:$APP"]

[[incident_rule]]
name = "bench_overload"
when = "service.in_flight >= 8"
actions = ["freeze_deploys"]
resolve_after = "500ms"

[[incident_action]]
name = "freeze_deploys"
kind = "freeze_deploys"
cooldown = "1ms"
max_per_window = 100000
window = "1s"
TOML
"$BIN" serve --config "$WORK/rampart.toml" >"$WORK/serve.log" 2>&1 & PIDS+=($!)
for _ in $(seq 200); do [ -s "$WORK/data/admin.token" ] && curl -sf "http://127.0.0.1:$API/health/ready" >/dev/null && break; sleep 0.1; done
TOKEN=$(cat "$WORK/data/admin.token")

python3 - "$API" "$ROUTER" "$TOKEN" "$TRIALS" <<'PY'
import json, sys, threading, time, urllib.request
from datetime import datetime

api, router, token, trials = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])

def get(path):
    req = urllib.request.Request(f"http://127.0.0.1:{api}{path}", headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.load(r)

def ts(text):
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()

def slow_request():
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{router}/", timeout=10).read()
    except Exception:
        pass

opened, acted = [], []
seen = set()
for trial in range(trials):
    # The previous trial's incident resolved: nothing unresolved is left.
    deadline = time.time() + 30
    while get("/api/v1/incidents?state=unresolved") and time.time() < deadline:
        time.sleep(0.05)
    threads = [threading.Thread(target=slow_request) for _ in range(8)]
    t0 = time.time()
    for t in threads:
        t.start()
    incident = None
    deadline = time.time() + 10
    while time.time() < deadline:
        found = [i for i in get("/api/v1/incidents?limit=5") if i["id"] not in seen]
        if found:
            detail = get(f"/api/v1/incidents/{found[0]['id']}")
            done = [e for e in detail["timeline"] if e["kind"] == "action" and e["details"].get("result") == "done"]
            if done:
                incident = (detail, done[0])
                break
        time.sleep(0.02)
    for t in threads:
        t.join()
    if incident is None:
        print(f"trial {trial}: no incident with a done action within 10 s", file=sys.stderr)
        sys.exit(1)
    detail, action = incident
    seen.add(detail["id"])
    opened.append((ts(detail["opened_at"]) - t0) * 1000)
    acted.append((ts(action["at"]) - t0) * 1000)

def pct(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]

for name, values in (("incident open", opened), ("first action done", acted)):
    print(f"{name:>18}: p50 {pct(values, 50):7.1f} ms  p99 {pct(values, 99):7.1f} ms  max {max(values):7.1f} ms  ({len(values)} trials)")
PY
