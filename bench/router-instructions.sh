#!/usr/bin/env bash
# User-space instructions per proxied request, counted by callgrind: rampart's router
# with per-version metrics on and off, and nginx, each with one worker, over the same
# upstream, for `h2load --h1 -c32` requests of 1 KiB. Each target runs twice (SMALL and
# LARGE requests) and the difference is divided by LARGE − SMALL, so start-up and
# shutdown cancel out.
#
# Instruction counts do not drift with the machine's load the way requests per second
# and CPU time do, so this is the measure for changes smaller than bench/router.sh's
# round-to-round spread (the metrics' cost, a few hundred instructions). It counts
# user space only: the kernel's share of each proxy's CPU (≈ 75 % here) is not in it.
#
# Needs: valgrind, h2load (nghttp2-client), nginx. It installs nothing.
#
# Settings (environment): SMALL [2000], LARGE [22000], SKIP_BUILD=1 (use the built
# examples; CARGO_TARGET_DIR as usual), TARGETS ["rampart rampart_nometrics nginx"],
# MODE [keepalive], keepalive-header (each request says `Connection: keep-alive`) or
# close (a new connection per request: `Connection: close`).
set -euo pipefail

SMALL=${SMALL:-2000}
LARGE=${LARGE:-22000}
TARGETS=${TARGETS:-"rampart rampart_nometrics nginx"}
MODE=${MODE:-keepalive}
case $MODE in
  keepalive) HEADER=() ;;
  # As browsers and most client libraries send it.
  keepalive-header) HEADER=(-H "Connection: keep-alive") ;;
  close) HEADER=(-H "Connection: close") ;;
  *) echo "MODE is keepalive, keepalive-header or close, not $MODE" >&2; exit 1 ;;
esac
ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=bench/lib/nginx-proxy.sh
. "$ROOT/bench/lib/nginx-proxy.sh"
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
BIN=$TARGET_DIR/release/examples

for tool in valgrind callgrind_annotate h2load; do
  command -v "$tool" >/dev/null || { echo "missing: $tool (apt-get install -y valgrind nghttp2-client)" >&2; exit 1; }
done
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

if [ "${SKIP_BUILD:-0}" != 1 ]; then
  (cd "$ROOT" && cargo build --release -q -p rampart-router --examples)
fi

# shellcheck source=bench/lib/work.sh
. "$ROOT/bench/lib/work.sh"

wait_for_200() {  # url
  for _ in $(seq 1 200); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' "$1" || true)" = 200 ] && return 0
    sleep 0.1
  done
  echo "no answer at $1" >&2
  exit 1
}

STABLE=$(free_port); CANARY=$(free_port)
"$BIN/bench_upstream" "127.0.0.1:$STABLE" & PIDS+=($!)
"$BIN/bench_upstream" "127.0.0.1:$CANARY" & PIDS+=($!)
wait_for_200 "http://127.0.0.1:$STABLE/1k"; wait_for_200 "http://127.0.0.1:$CANARY/1k"

# Starts a target under callgrind; prints its pid and port.
start() {  # target, output file
  local port; port=$(free_port)
  case $1 in
    rampart|rampart_nometrics)
      local metrics=metrics-on
      [ "$1" = rampart_nometrics ] && metrics=metrics-off
      BENCH_ROUTER_WORKERS=1 valgrind --tool=callgrind --callgrind-out-file="$2" \
        "$BIN/bench_router" "127.0.0.1:$port" "127.0.0.1:$STABLE" "127.0.0.1:$CANARY" "$metrics" \
        > /dev/null 2> "$WORK/$1.log" &
      ;;
    nginx)
      nginx_proxy_conf "$WORK/nginx" "$STABLE" "$CANARY" \
        "worker_processes 1;
master_process off;
events { worker_connections 4096; }" \
        "listen 127.0.0.1:$port;"
      valgrind --tool=callgrind --callgrind-out-file="$2" \
        "$NGINX" -c "$WORK/nginx/nginx.conf" -p "$WORK/nginx" > /dev/null 2> "$WORK/$1.log" &
      ;;
    *) echo "unknown target: $1" >&2; exit 1;;
  esac
  echo "$! $port"
}

# Total instructions of one run of `requests` requests.
count() {  # target, requests
  local out=$WORK/$1.$2.callgrind pid port
  read -r pid port <<< "$(start "$1" "$out")"
  PIDS+=("$pid")
  wait_for_200 "http://127.0.0.1:$port/1k"
  local done_count
  done_count=$(h2load --h1 -n"$2" -c32 -t1 "${HEADER[@]}" "http://127.0.0.1:$port/1k" | awk '/^requests:/ {print $8}')
  if [ "$done_count" != "$2" ]; then
    echo "$1: $done_count of $2 requests succeeded" >&2
    exit 1
  fi
  # SIGINT stops the router example; SIGQUIT stops nginx gracefully. Either way
  # callgrind writes its counts when the process exits.
  kill -INT "$pid" 2>/dev/null || true
  [ "$1" = nginx ] && kill -QUIT "$pid" 2>/dev/null || true
  for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  callgrind_annotate "$out" 2>/dev/null | awk '/PROGRAM TOTALS/ && !seen {gsub(",", "", $1); print $1; seen = 1}'
}

declare -A PER_REQUEST
for target in $TARGETS; do
  small=$(count "$target" "$SMALL")
  large=$(count "$target" "$LARGE")
  PER_REQUEST[$target]=$(( (large - small) / (LARGE - SMALL) ))
  echo "$target: ${PER_REQUEST[$target]} instructions per request (runs of $SMALL and $LARGE requests: $small and $large)" >&2
done

echo
echo "| target ($MODE) | user-space instructions per request |"
echo "|---|---:|"
for target in $TARGETS; do
  echo "| $target | ${PER_REQUEST[$target]} |"
done
if [ -n "${PER_REQUEST[rampart]:-}" ] && [ -n "${PER_REQUEST[rampart_nometrics]:-}" ]; then
  python3 -c "on, off = ${PER_REQUEST[rampart]}, ${PER_REQUEST[rampart_nometrics]}; print(f'\nper-version metrics: {on - off:+d} instructions per request ({100 * (on - off) / off:+.1f} % of the user-space instructions)')"
fi
if [ -n "${PER_REQUEST[rampart]:-}" ] && [ -n "${PER_REQUEST[nginx]:-}" ]; then
  python3 -c "r, n = ${PER_REQUEST[rampart]}, ${PER_REQUEST[nginx]}; print(f'rampart ÷ nginx: {r / n:.2f}')"
fi
