#!/usr/bin/env bash
# Soak: rollouts and rollbacks back to back under 500 requests/s through the router
# for SECS seconds (default 1800, 30 minutes): 0 failed requests, RSS growth of
# rampart at most 10 MB after a one-minute warm-up, open file descriptors flat.
#
# It is crates/cli/tests/soak.rs (whose CI form runs 2 minutes) run longer; the last
# line it prints is the figure for docs/BENCHMARKS.md.
#
# Usage: bench/soak.sh [SECS]
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-1800}
RAMPART_SOAK_SECS=$SECS cargo test -q -p rampart --test soak -- --nocapture 2>&1 \
    | tee /dev/stderr | grep '^soak:'
