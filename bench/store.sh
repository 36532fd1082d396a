#!/usr/bin/env bash
# Does reading the store slow down a rollback? With viewers hammering the API and
# `audit verify` running back to back, measure
#
# 1. rollback latency: from just before the `rollback` API call to the canary's
#    weight reaching 0, seen two ways: the call's own duration (the weight is 0
#    when it answers) and the last request that reaches the canary (as in
#    bench/rollback.sh: a static canary run by this script reports it on /stats);
# 2. `/health/ready` latency: sequential probes over one keep-alive connection,
#    p50/p99/max.
#
# Load while measuring: VIEWER_RPS (default 500) requests/s with a viewer token
# spread over status, deployment list, audit list and token-authenticated reads;
# `audit verify` looping over an audit log seeded with SEED_ENTRIES entries;
# ROUTER_RPS (default 300) requests/s through the service's router, so the canary
# has traffic to lose. Every load runs at a fixed rate: a closed-loop generator
# such as wrk would keep both cores of a small machine busy on its own, and the
# probes would then measure how long they wait for a core, not what rampart does.
#
# Usage: bench/store.sh [RUNS]   (needs python3)
#        RAMPART_BIN=path/to/rampart skips the release build (bench/lib.sh).
#        PROBE_NICE=-10 gives the readiness probe priority over the load (root only).
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-10}
VIEWER_RPS=${VIEWER_RPS:-500}
ROUTER_RPS=${ROUTER_RPS:-300}
SEED_ENTRIES=${SEED_ENTRIES:-5000}

source bench/lib.sh
start_static_bench_service
VIEWER=$(api -X POST "http://127.0.0.1:$API/api/v1/tokens" -d '{"name":"viewer","role":"viewer"}' | json 'd["secret"]')

# An audit log worth verifying: every traffic change is an audited, fsync'd commit.
python3 - "$API" "$TOKEN" "$SEED_ENTRIES" <<'PY'
import http.client, json, sys
api, token, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
conn = http.client.HTTPConnection("127.0.0.1", int(api))
headers = {"Authorization": f"Bearer {token}", "content-type": "application/json"}
for n in range(count):
    body = json.dumps({"max_concurrency": 1000 + n % 2})
    conn.request("PUT", "/api/v1/services/bench/traffic", body, headers)
    r = conn.getresponse(); r.read()
    assert r.status == 200, r.status
PY

# The load: viewers at a fixed rate, audit verify in a loop, traffic through the
# router at a fixed rate. `fixed_rate.py PORT TOKEN RPS SECONDS OUT PATH...`
# (TOKEN "-" sends none).
cat > "$WORK/fixed_rate.py" <<'PY'
import http.client, sys, threading, time
port, token, rps, seconds, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), sys.argv[5]
paths = sys.argv[6:]
THREADS = 10
stats = {"ok": 0, "err": 0}
lock = threading.Lock()
def worker(i):
    conn = http.client.HTTPConnection("127.0.0.1", int(port), timeout=10)
    headers = {"Authorization": f"Bearer {token}"} if token != "-" else {}
    interval = THREADS / rps
    next_at = time.monotonic() + i * interval / THREADS
    end = time.monotonic() + seconds
    n = i
    while time.monotonic() < end:
        delay = next_at - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        next_at += interval
        try:
            conn.request("GET", paths[n % len(paths)], headers=headers)
            r = conn.getresponse(); r.read()
            ok = r.status == 200
        except Exception:
            conn = http.client.HTTPConnection("127.0.0.1", int(port), timeout=10)
            ok = False
        n += 1
        with lock:
            stats["ok" if ok else "err"] += 1
threads = [threading.Thread(target=worker, args=(i,)) for i in range(THREADS)]
start = time.monotonic()
for t in threads: t.start()
for t in threads: t.join()
with open(out, "w") as f:
    f.write(f'{stats["ok"]} {stats["err"]} {time.monotonic() - start:.1f}\n')
PY
DURATION=$((RUNS * 9 + 20))
python3 "$WORK/fixed_rate.py" "$API" "$VIEWER" "$VIEWER_RPS" "$DURATION" "$WORK/viewers.out" \
    /api/v1/services/bench/status "/api/v1/deployments?limit=20" \
    "/api/v1/audit?limit=50&order=desc" /api/v1/services & PIDS+=($!)
python3 "$WORK/fixed_rate.py" "$ROUTER" - "$ROUTER_RPS" "$DURATION" "$WORK/router.out" / & PIDS+=($!)
( while true; do curl -sf -H "Authorization: Bearer $VIEWER" "http://127.0.0.1:$API/api/v1/audit/verify" >>"$WORK/verify.log" && echo >>"$WORK/verify.log"; done ) & PIDS+=($!)

# Readiness probes over the whole run, sequential on one keep-alive connection,
# alternating with /health/live: live does no work at all, so its latency is the
# floor this machine and client set (scheduling, Python, the HTTP stack), and the
# difference is what readiness itself costs.
cat > "$WORK/ready.py" <<'PY'
import http.client, sys, time
api, seconds, out = sys.argv[1], float(sys.argv[2]), sys.argv[3]
conn = http.client.HTTPConnection("127.0.0.1", int(api), timeout=10)
samples = {"/health/ready": [], "/health/live": []}
end = time.monotonic() + seconds
while time.monotonic() < end:
    for path, kept in samples.items():
        t0 = time.perf_counter()
        conn.request("GET", path)
        r = conn.getresponse(); r.read()
        kept.append((time.perf_counter() - t0) * 1000 if r.status == 200 else float("inf"))
        time.sleep(0.005)
with open(out, "w") as f:
    f.write(" ".join(f"{s:.3f}" for s in samples["/health/ready"]) + "\n")
    f.write(" ".join(f"{s:.3f}" for s in samples["/health/live"]) + "\n")
PY
# PROBE_NICE (e.g. -10, as root) runs the probe ahead of the load generators, so its
# own wait for a core does not count as rampart's latency.
nice -n "${PROBE_NICE:-0}" python3 "$WORK/ready.py" "$API" "$((DURATION - 5))" "$WORK/ready.out" & READY_PID=$!; PIDS+=($READY_PID)
sleep 3

CALLS=(); LAST=()
for i in $(seq "$RUNS"); do
    ID=$(deploy_canary "$i")
    sleep 2   # the canary takes half the traffic meanwhile
    T0=$(now_ms)
    CALL=$(api -o /dev/null -w '%{time_total}' -X POST "http://127.0.0.1:$API/api/v1/services/bench/rollback" -d '{"reason":"bench"}')
    sleep 1
    LAST_AT=$(curl -sf "http://127.0.0.1:$CANARY/stats" | json 'd["last_request_unix_ms"]')
    CALLS+=("$CALL"); LAST+=($((LAST_AT - T0)))
    wait_state "$ID" rolled_back
done
wait "$READY_PID"
while [ ! -s "$WORK/viewers.out" ] || [ ! -s "$WORK/router.out" ]; do sleep 1; done
VERIFIES=$(grep -c '"ok":true' "$WORK/verify.log" || true)
ENTRIES=$(grep '"ok":true' "$WORK/verify.log" | tail -n 1 | json 'd["entries_checked"]' 2>/dev/null || echo "?")

python3 - "${CALLS[*]}" "${LAST[*]}" "$(sed -n 1p "$WORK/ready.out")" "$(cat "$WORK/viewers.out")" "$VERIFIES" "$ENTRIES" "$(sed -n 2p "$WORK/ready.out")" "$(cat "$WORK/router.out")" <<'PY'
import statistics, sys
calls = [float(x) * 1000 for x in sys.argv[1].split()]
last = [int(x) for x in sys.argv[2].split()]
ready = sorted(float(x) for x in sys.argv[3].split())
ok, err, secs = sys.argv[4].split()
def pct(xs, p): return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]
print("| measure | samples | median | p99 | max | target |")
print("|---|---|---|---|---|---|")
print(f"| rollback API call (answers once the weight is 0) | {len(calls)} | {statistics.median(calls):.1f} ms | — | {max(calls):.1f} ms | ≤ 100 ms |")
print(f"| rollback call → last request at the canary | {len(last)} | {statistics.median(last)} ms | — | {max(last)} ms | ≤ 100 ms |")
print(f"| `/health/ready` (client-side, one keep-alive connection) | {len(ready)} | {pct(ready, 50):.2f} ms | {pct(ready, 99):.2f} ms | {ready[-1]:.2f} ms | p99 ≤ 1 ms |")
live = sorted(float(x) for x in sys.argv[7].split())
print(f"| `/health/live`, same connection, alternating (the floor: no work) | {len(live)} | {pct(live, 50):.2f} ms | {pct(live, 99):.2f} ms | {live[-1]:.2f} ms | — |")
r_ok, r_err, r_secs = sys.argv[8].split()
print()
print(f"Load meanwhile: {int(ok) / float(secs):.0f} viewer requests/s answered ({ok} ok, {err} failed), "
      f"{sys.argv[5]} audit verifications of {sys.argv[6]} entries, "
      f"{int(r_ok) / float(r_secs):.0f} requests/s through the router ({r_ok} ok, {r_err} failed).")
PY
