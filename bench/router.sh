#!/usr/bin/env bash
# Benchmarks rampart's router against nginx and HAProxy, all doing the same 90/10
# weighted split over the same two upstream instances, measured with the same load
# generators. The targets are interleaved: every round runs each of them once, in an
# order rotated every round, so drift on this shared machine hits all of them alike;
# the report gives medians and the median (and spread) of the per-round ratios.
#
# Needs: wrk, h2load (nghttp2-client), nginx, haproxy. It installs nothing; on Debian:
#   apt-get install -y nginx haproxy wrk nghttp2-client
#
# Settings (environment), defaults in brackets:
#   ROUNDS [5]            rounds per configuration
#   DURATION [5]          seconds per target per round
#   CONNECTIONS ["32 256 1024"]
#   MODES ["keepalive close h2c"]  keepalive: HTTP/1.1 keep-alive (wrk);
#                         close: a new connection per request (wrk, Connection: close);
#                         h2c: HTTP/2 with prior knowledge, one stream per connection (h2load)
#   SIZES ["1k 64k"]      response body size
#   TARGETS ["rampart rampart_nometrics nginx haproxy"] (also: direct)
#   SKIP_BUILD=1          use already built examples; CARGO_TARGET_DIR as usual
#   PROFILE [release]     the cargo profile to build and run (debug: a quick check of the script)
#   BASELINE_ROUTER=path  adds target "baseline": another build of bench_router
#   OUT=dir               where the raw results go [$CARGO_TARGET_DIR/bench-router/<time>]
#   ALLOW_ERRORS=1        report instead of failing on non-2xx or socket errors
#   WORKERS [2]           threads (rampart, HAProxy) and worker processes (nginx) of
#                         every proxy alike
set -euo pipefail

ROUNDS=${ROUNDS:-5}
DURATION=${DURATION:-5}
CONNECTIONS=${CONNECTIONS:-"32 256 1024"}
MODES=${MODES:-"keepalive close h2c"}
SIZES=${SIZES:-"1k 64k"}
TARGETS=${TARGETS:-"rampart rampart_nometrics nginx haproxy"}
[ -n "${BASELINE_ROUTER:-}" ] && TARGETS="$TARGETS baseline"
THREADS=2
WORKERS=${WORKERS:-2}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=bench/lib/nginx-proxy.sh
. "$ROOT/bench/lib/nginx-proxy.sh"
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
PROFILE=${PROFILE:-release}
BIN=$TARGET_DIR/$PROFILE/examples

missing=()
for tool in wrk h2load nginx haproxy; do
  command -v "$tool" >/dev/null || [ -x "/usr/sbin/$tool" ] || missing+=("$tool")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "missing: ${missing[*]}" >&2
  echo "install with: apt-get install -y nginx haproxy wrk nghttp2-client" >&2
  exit 1
fi
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
HAPROXY=$(command -v haproxy || echo /usr/sbin/haproxy)

if [ "${SKIP_BUILD:-0}" != 1 ]; then
  profile_flag=--release
  [ "$PROFILE" = debug ] && profile_flag=
  (cd "$ROOT" && cargo build $profile_flag -q -p rampart-router --examples)
fi

# 1 024 client connections plus the proxies' upstream connections.
ulimit -n "$(ulimit -Hn)"

OUT=${OUT:-$TARGET_DIR/bench-router/$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT"
RESULTS=$OUT/results.tsv
# The proxies' logs stay with the results.
keep_from_work() { cp "$WORK"/*.log "$OUT"/ 2>/dev/null || true; }
# shellcheck source=bench/lib/work.sh
. "$ROOT/bench/lib/work.sh"

wait_for() {
  for _ in $(seq 1 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
    sleep 0.05
  done
  echo "nothing listens on port $1" >&2
  exit 1
}

STABLE=$(free_port); CANARY=$(free_port)
"$BIN/bench_upstream" "127.0.0.1:$STABLE" & STABLE_PID=$!; PIDS+=("$STABLE_PID")
"$BIN/bench_upstream" "127.0.0.1:$CANARY" & PIDS+=($!)
wait_for "$STABLE"; wait_for "$CANARY"

# Every target: an HTTP/1.1 port, an h2c port (the same one where the server tells
# them apart itself) and the pid whose process tree's CPU time is counted.
declare -A H1_PORT H2_PORT PID_OF

start_router() {  # name, binary, metrics-on|metrics-off
  local port; port=$(free_port)
  BENCH_ROUTER_WORKERS=$WORKERS "$2" "127.0.0.1:$port" "127.0.0.1:$STABLE" "127.0.0.1:$CANARY" "$3" 2> "$WORK/$1.log" &
  PID_OF[$1]=$!; PIDS+=($!)
  H1_PORT[$1]=$port; H2_PORT[$1]=$port
  wait_for "$port"
}

start_nginx() {
  local h1 h2; h1=$(free_port); h2=$(free_port)
  nginx_proxy_conf "$WORK/nginx" "$STABLE" "$CANARY" \
    "worker_processes $WORKERS;
worker_rlimit_nofile 16384;
events { worker_connections 8192; }" \
    "listen 127.0.0.1:$h1;
    listen 127.0.0.1:$h2 http2;"
  "$NGINX" -c "$WORK/nginx/nginx.conf" -p "$WORK/nginx" 2> "$WORK/nginx.log" &
  PID_OF[nginx]=$!; PIDS+=($!)
  H1_PORT[nginx]=$h1; H2_PORT[nginx]=$h2
  wait_for "$h1"; wait_for "$h2"
}

start_haproxy() {
  local h1 h2; h1=$(free_port); h2=$(free_port)
  cat > "$WORK/haproxy.cfg" <<CONF
global
  nbthread $WORKERS
  maxconn 8000
defaults
  mode http
  maxconn 8000
  timeout connect 2s
  timeout client 30s
  timeout server 30s
  option forwardfor
  http-reuse always
frontend h1
  bind 127.0.0.1:$h1
  default_backend app
frontend h2c
  bind 127.0.0.1:$h2 proto h2
  default_backend app
backend app
  balance roundrobin
  server stable 127.0.0.1:$STABLE weight 90
  server canary 127.0.0.1:$CANARY weight 10
CONF
  "$HAPROXY" -f "$WORK/haproxy.cfg" -db 2> "$WORK/haproxy.log" &
  PID_OF[haproxy]=$!; PIDS+=($!)
  H1_PORT[haproxy]=$h1; H2_PORT[haproxy]=$h2
  wait_for "$h1"; wait_for "$h2"
}

for target in $TARGETS; do
  case $target in
    rampart) start_router rampart "$BIN/bench_router" metrics-on;;
    rampart_nometrics) start_router rampart_nometrics "$BIN/bench_router" metrics-off;;
    baseline) start_router baseline "$BASELINE_ROUTER" metrics-on;;
    nginx) start_nginx;;
    haproxy) start_haproxy;;
    direct) H1_PORT[direct]=$STABLE; H2_PORT[direct]=$STABLE; PID_OF[direct]=$STABLE_PID;;
    *) echo "unknown target: $target" >&2; exit 1;;
  esac
done

# CPU time (utime + stime, in clock ticks) of a process and its children (nginx's
# workers are children of its master).
cpu_ticks() {
  local total=0 pid
  for pid in "$1" $(pgrep -P "$1" || true); do
    if [ -r "/proc/$pid/stat" ]; then
      total=$((total + $(awk '{print $14 + $15}' "/proc/$pid/stat")))
    fi
  done
  echo "$total"
}
TICK_US=$((1000000 / $(getconf CLK_TCK)))

# Runs one load; prints "rps p50_ms p99_ms requests errors".
load() {  # mode, connections, url
  local mode=$1 conns=$2 url=$3
  case $mode in
    keepalive|close)
      local header=()
      [ "$mode" = close ] && header=(-H "Connection: close")
      wrk -t"$THREADS" -c"$conns" -d"${DURATION}s" --latency "${header[@]}" "$url" > "$WORK/out.txt" 2>&1 || true
      python3 "$ROOT/bench/lib/parse_load.py" wrk "$WORK/out.txt"
      ;;
    h2c)
      rm -f "$WORK/h2load.log"
      h2load -t"$THREADS" -c"$conns" -m1 -D"$DURATION" --log-file="$WORK/h2load.log" "$url" > "$WORK/out.txt" 2>&1 || true
      python3 "$ROOT/bench/lib/parse_load.py" h2load "$WORK/out.txt" "$WORK/h2load.log"
      ;;
  esac
}

printf 'connections\tmode\tsize\tround\ttarget\trps\tp50_ms\tp99_ms\tcpu_us_per_request\trequests\terrors\n' > "$RESULTS"
read -r -a TARGET_LIST <<< "$TARGETS"
failures=0
for conns in $CONNECTIONS; do
  for mode in $MODES; do
    for size in $SIZES; do
      for round in $(seq 1 "$ROUNDS"); do
        # Rotate the order every round.
        n=${#TARGET_LIST[@]}
        for i in $(seq 0 $((n - 1))); do
          target=${TARGET_LIST[$(((i + round) % n))]}
          port=${H1_PORT[$target]}
          [ "$mode" = h2c ] && port=${H2_PORT[$target]}
          url="http://127.0.0.1:$port/$size"
          # Fills connection pools, so every target starts its round warm.
          curl -s -o /dev/null "$url" || true
          before=$(cpu_ticks "${PID_OF[$target]}")
          read -r rps p50 p99 requests errors <<< "$(load "$mode" "$conns" "$url")"
          after=$(cpu_ticks "${PID_OF[$target]}")
          cpu=$(python3 -c "print(f'{($after - $before) * $TICK_US / max($requests, 1):.1f}')")
          printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$conns" "$mode" "$size" "$round" \
            "$target" "$rps" "$p50" "$p99" "$cpu" "$requests" "$errors" >> "$RESULTS"
          echo "c=$conns $mode $size round $round $target: $rps req/s p99 ${p99} ms cpu ${cpu} µs/req errors $errors" >&2
          if [ "$errors" != 0 ]; then
            failures=$((failures + 1))
            echo "ERROR: $target answered $errors requests with a non-2xx status or a socket error (c=$conns $mode $size round $round):" >&2
            sed 's/^/    /' "$WORK/out.txt" >&2
          fi
        done
      done
    done
  done
done

# The split check: rampart's router reports what it assigned when it stops.
split_ok=1
for target in rampart baseline; do
  [ -n "${PID_OF[$target]:-}" ] || continue
  kill -TERM "${PID_OF[$target]}"
  wait "${PID_OF[$target]}" 2>/dev/null || true
  if ! python3 - "$WORK/$target.log" "$target" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
m = re.search(r"split: stable (\d+) requests, canary (\d+) requests", text)
if not m:
    sys.exit(f"{sys.argv[2]}: the router printed no split on SIGTERM")
stable, canary = map(int, m.groups())
share = 100.0 * canary / max(stable + canary, 1)
print(f"{sys.argv[2]} split: stable {stable}, canary {canary} ({share:.2f} % canary, configured 10 %)", file=sys.stderr)
sys.exit(0 if abs(share - 10.0) < 1.0 else 1)
PY
  then split_ok=0; fi
done

NGINX_VERSION=$("$NGINX" -v 2>&1 | sed 's/.*nginx\///' || true)
HAPROXY_VERSION=$("$HAPROXY" -v 2>/dev/null | awk 'NR==1 {print $3}' || true)
echo
echo "Interleaved: $ROUNDS rounds of ${DURATION} s per target, order rotated every round; $WORKERS workers per proxy; load: wrk (HTTP/1.1) and h2load (h2c), $THREADS threads; upstream: bench_upstream ×2, split 90/10; nginx $NGINX_VERSION, HAProxy $HAPROXY_VERSION. Raw results: $RESULTS"
echo
python3 "$ROOT/bench/lib/router_report.py" "$RESULTS"

if [ "$failures" -gt 0 ] && [ "${ALLOW_ERRORS:-0}" != 1 ]; then
  echo "FAILED: $failures measurements had non-2xx responses or socket errors (see above)" >&2
  exit 1
fi
if [ "$split_ok" != 1 ]; then
  echo "FAILED: the router's split is not 90/10" >&2
  exit 1
fi
