#!/usr/bin/env bash
# The autoscaler and the incident rules on the real binary (docs/BENCHMARKS.md,
# "Decisions under drift"): real HTTP through the router, open-loop load, with
#   - load ramping 2 -> 16 req/s and back under two busy loops (autoscaler: reaction,
#     back to min after the stabilisation window, direction changes, min/max held);
#   - every instance SIGSTOPped for 8 s under steady load (autoscaler: resizes that
#     should not happen; incidents: one incident, actions once, detect and resolve);
#   - three busy loops saturating both cores (incidents: service rules must stay
#     quiet; a host CPU rule opens one host-wide incident).
# Each scenario runs ROUNDS times (default 5; CI runs the same tests once) and prints
# one `decisions-live:` line per round and a median summary, with the load average.
#
#   bench/decisions-live.sh [ROUNDS] [TEST-NAME-FILTER]
#
# The debug build is used on purpose (as bench/judge-live.sh does): its router and
# sample apps are slower and noisier than a release build's, which makes wrong
# decisions likelier, and it needs no fat-LTO build.
set -euo pipefail
cd "$(dirname "$0")/.."
export RAMPART_DECISIONS_ROUNDS="${1:-5}"
FILTER="${2:-}"
OUT=$(mktemp)
trap 'rm -f "$OUT"' EXIT
echo "== decisions under drift: $RAMPART_DECISIONS_ROUNDS round(s) per scenario, $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
set +e
cargo test --locked -p rampart --test decisions_live -- --nocapture --test-threads 1 $FILTER 2>&1 | tee "$OUT" | grep -E '^decisions-live:|^test |panicked|test result'
status=${PIPESTATUS[0]}
set -e
echo "== summaries"
grep '^decisions-live: summary' "$OUT" || true
exit "$status"
