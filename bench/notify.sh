#!/usr/bin/env bash
# How fast a committed change reaches a notification receiver.
#
# A static service with `notify_rollouts = ["hook"]` and a local webhook receiver
# (Python, this script) that notes when each request arrives. Each run deploys a
# version and aborts it, which commits rollout_started, rollout_step_advanced and
# rollout_rolled_back; the latency of a message is its arrival at the receiver
# minus the time of the change it reports (`message.at`, stamped just before the
# transaction that writes the change and the outbox row commits).
#
# Usage: bench/notify.sh [RUNS]        (RAMPART_BIN=path skips the release build)
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-20}

# The binary, a work dir cleaned up on exit, free_port, json, now_ms, api.
source bench/lib.sh

STABLE=$(free_port); CANARY=$(free_port); ROUTER=$(free_port); API=$(free_port); HOOK=$(free_port)
"$BIN" sample-app --listen "127.0.0.1:$STABLE" --version v1 >/dev/null 2>&1 & PIDS+=($!)
"$BIN" sample-app --listen "127.0.0.1:$CANARY" --version v2 >/dev/null 2>&1 & PIDS+=($!)

cat > "$WORK/receiver.py" <<'PY'
import http.server, json, sys, time
out = open(sys.argv[2], "a", buffering=1)
class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_POST(self):
        arrived = time.time() * 1000
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        message = json.loads(body)["message"]
        out.write(json.dumps({"arrived_ms": arrived, "at": message["at"], "topic": message["topic"]}) + "\n")
        self.send_response(200)
        self.send_header("content-length", "2")
        self.end_headers()
        self.wfile.write(b"ok")
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
PY
python3 "$WORK/receiver.py" "$HOOK" "$WORK/arrivals.jsonl" & PIDS+=($!)
for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$HOOK") 2>/dev/null && break; sleep 0.05; done

cat > "$WORK/rampart.toml" <<TOML
[server]
listen = "127.0.0.1:$API"
data_dir = "data"

[[service]]
name = "bench"
listen = "127.0.0.1:$ROUTER"
notify_rollouts = ["hook"]
[service.backend]
kind = "static"
stable = ["127.0.0.1:$STABLE"]
[service.strategy]
steps = [{ weight = 50, hold = "1h" }]
progress_deadline = "1h"
[service.analysis]
judge = "threshold"
interval = "1h"

[[notifier]]
name = "hook"
kind = "webhook"
url = "http://127.0.0.1:$HOOK/rampart"
rate_limit = 1000
TOML
"$BIN" serve --config "$WORK/rampart.toml" >"$WORK/serve.log" 2>&1 & PIDS+=($!)
for _ in $(seq 100); do [ -s "$WORK/data/admin.token" ] && curl -sf "http://127.0.0.1:$API/health/ready" >/dev/null && break; sleep 0.1; done
TOKEN=$(cat "$WORK/data/admin.token")

for i in $(seq "$RUNS"); do
    ID=$(api -X POST "http://127.0.0.1:$API/api/v1/services/bench/deployments" \
        -d "{\"version\":\"v2\",\"canary\":[\"127.0.0.1:$CANARY\"],\"reason\":\"bench $i\"}" | json 'd["id"]')
    for _ in $(seq 200); do
        STATE=$(api "http://127.0.0.1:$API/api/v1/deployments/$ID" | json 'd["summary"]["state"]')
        [ "$STATE" = progressing ] && break; sleep 0.05
    done
    api -X POST "http://127.0.0.1:$API/api/v1/services/bench/abort" -d '{"reason":"bench"}' >/dev/null
    for _ in $(seq 200); do
        STATE=$(api "http://127.0.0.1:$API/api/v1/deployments/$ID" | json 'd["summary"]["state"]')
        [ "$STATE" = aborted ] && break; sleep 0.05
    done
done
sleep 1
api "http://127.0.0.1:$API/api/v1/notifications?limit=1000" > "$WORK/outbox.json"
grep -h "will retry" "$WORK/serve.log" | head -5 || true

python3 - "$WORK/arrivals.jsonl" "$RUNS" "$WORK/outbox.json" <<'PY'
import json, sys
from datetime import datetime
rows = [json.loads(line) for line in open(sys.argv[1])]
def latency(row):
    at = datetime.fromisoformat(row["at"].replace("Z", "+00:00")).timestamp() * 1000
    return row["arrived_ms"] - at
values = sorted(latency(r) for r in rows)
first = sorted(latency(r) for r in rows if r["topic"] == "rollout_started")
def pct(v, p):
    return v[min(len(v) - 1, int(round(p / 100 * (len(v) - 1))))]
print(f"runs: {sys.argv[2]}, messages received: {len(rows)} (expected {3 * int(sys.argv[2])})")
print(f"change to first request at the receiver, all messages: p50 {pct(values, 50):.1f} ms, "
      f"p99 {pct(values, 99):.1f} ms, max {values[-1]:.1f} ms")
print(f"rollout_started only: p50 {pct(first, 50):.1f} ms, max {first[-1]:.1f} ms")
outbox = json.load(open(sys.argv[3]))
retried = [n for n in outbox if n["attempts"] > 1]
print(f"outbox: {len(outbox)} rows, states {sorted(set(n['state'] for n in outbox))}, "
      f"{len(retried)} needed more than one attempt")
for n in retried[:5]:
    print(f"  #{n['id']} {n['topic']}: {n['attempts']} attempts")
PY
