# What every benchmark script sets up: a work dir (WORK) removed on exit, the
# processes it starts (their pids appended to PIDS) stopped on exit, and free_port.
# A script that keeps something from WORK defines keep_from_work, which runs after
# the processes stopped and before WORK is removed.
#
# Source it after `set -euo pipefail`.

WORK=$(mktemp -d)
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    if declare -F keep_from_work >/dev/null; then keep_from_work; fi
    rm -rf "$WORK"
}
trap cleanup EXIT

# A port free on 127.0.0.1 now.
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}
