#!/usr/bin/env bash
# The dashboard's figures, measured in a real headless Chromium by the end-to-end
# browser test (crates/cli/tests/dashboard_browser.rs, dashboard/e2e/):
#   - bundle size: every file of dashboard/dist, raw and gzipped (level 9);
#   - first meaningful render: a fresh page load with a session until the services
#     table has its rows (performance.now() from navigation start), local API;
#   - 20 services, one event per second each (a weight set by hand), for 15 s: how
#     long until the page shows each change, and how late a 50 ms page timer runs
#     (p95 and max) and how many long tasks (> 50 ms) the page had.
#
# Usage: bench/dashboard.sh [RUNS]
# Needs: apt-get install -y chromium; (cd dashboard && npm ci)
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-3}
OUT=target/dashboard-screenshots
for run in $(seq 1 "$RUNS"); do
    RAMPART_REQUIRE_BROWSER=1 cargo test -q -p rampart --test dashboard_browser >/dev/null 2>&1 || {
        echo "run $run: the browser test failed; run it with --nocapture to see why" >&2
        exit 1
    }
    node -e '
        const f = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
        const l = f.load;
        console.log(`run ${process.argv[2]}: bundle ${f.bundle.gzip} B gzipped (${f.bundle.raw} B raw); ` +
            `first render ${f.first_render_ms} ms; ${l.services} services × 1 event/s: change shown ` +
            `median ${l.change_shown_ms_median} ms, max ${l.change_shown_ms_max} ms; timer lag p95 ` +
            `${l.timer_lag_ms_p95} ms, max ${l.timer_lag_ms_max} ms; long tasks ${l.long_tasks}`);
    ' "$OUT/figures.json" "$run"
done
