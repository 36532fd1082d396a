#!/usr/bin/env bash
# The judge on the real binary (docs/BENCHMARKS-judge.md, "On the real binary"):
# N rollouts of an identical build through rampart's router and process backend
# under load that ramps x4 and back with a CPU-hungry neighbour for part of each
# rollout (none may be rolled back), then a +5 ms canary and a 1 % -> 3 % error
# canary under the same conditions (both must be). Decision times are printed.
#
#   bench/judge-live.sh [ROLLOUTS]     # default 20; CI runs the same test with 3
#
# The test profile (debug rampart) is used on purpose: its router and sample apps are
# slower and noisier than a release build's, which makes false rollbacks likelier,
# and it needs no fat-LTO build.
set -euo pipefail
cd "$(dirname "$0")/.."
export RAMPART_JUDGE_LIVE_ROLLOUTS="${1:-20}"
exec cargo test --locked -p rampart --test judge_live -- --nocapture --test-threads 1
