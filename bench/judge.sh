#!/usr/bin/env bash
# Decision-quality benchmark of rampart's canary judges (docs/BENCHMARKS-judge.md).
# Builds in release mode and prints a markdown table; extra arguments go to the
# benchmark, e.g. `bench/judge.sh --runs 200` or `bench/judge.sh --replay bench/data/real-rollout-bad-canary.jsonl`.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet -p rampart-judge-bench
target_dir="${CARGO_TARGET_DIR:-target}"
exec "$target_dir/release/rampart-judge-bench" "$@"
