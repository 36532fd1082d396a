#!/usr/bin/env bash
# Benchmarks rampart's router against a direct connection, nginx and HAProxy, all
# doing the same 90/10 weighted split over the same two upstream instances, measured
# with the same load generator. Prints a markdown table.
#
# Needs: wrk (or oha), nginx, haproxy. It installs nothing; on Debian/Ubuntu:
#   apt-get install -y nginx haproxy wrk
#
# Settings (environment): DURATION (default 10s), THREADS (2), CONNECTIONS (64),
# SKIP_BUILD=1 to use already built examples, CARGO_TARGET_DIR as usual,
# BASELINE_ROUTER=/path/to/bench_router adds a row for another build of the router
# (e.g. an earlier commit's, copied aside) measured in the same run.
set -euo pipefail

DURATION=${DURATION:-10s}
THREADS=${THREADS:-2}
CONNECTIONS=${CONNECTIONS:-64}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
BIN=$TARGET/release/examples

missing=()
if command -v wrk >/dev/null; then LOADGEN=wrk
elif command -v oha >/dev/null; then LOADGEN=oha
else missing+=(wrk); fi
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || missing+=(nginx)
command -v haproxy >/dev/null || [ -x /usr/sbin/haproxy ] || missing+=(haproxy)
if [ ${#missing[@]} -gt 0 ]; then
  echo "missing: ${missing[*]}" >&2
  echo "install with: apt-get install -y nginx haproxy wrk" >&2
  exit 1
fi
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
HAPROXY=$(command -v haproxy || echo /usr/sbin/haproxy)

if [ "${SKIP_BUILD:-0}" != 1 ]; then
  (cd "$ROOT" && cargo build --release -q -p rampart-router --examples)
fi

WORK=$(mktemp -d)
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

# A free port on 127.0.0.1, chosen by the kernel.
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

wait_for() {
  for _ in $(seq 1 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
    sleep 0.05
  done
  echo "nothing listens on port $1" >&2
  exit 1
}

STABLE=$(free_port); CANARY=$(free_port)
"$BIN/bench_upstream" "127.0.0.1:$STABLE" & STABLE_PID=$!; PIDS+=($STABLE_PID)
"$BIN/bench_upstream" "127.0.0.1:$CANARY" & PIDS+=($!)
wait_for "$STABLE"; wait_for "$CANARY"

# --- nginx: weights 9:1, pooled keep-alive upstream connections.
NGINX_PORT=$(free_port)
mkdir -p "$WORK/nginx/tmp"
USER_LINE=""
[ "$(id -u)" = 0 ] && USER_LINE="user root;"
cat > "$WORK/nginx/nginx.conf" <<CONF
$USER_LINE
worker_processes 2;
daemon off;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $WORK/nginx/tmp/body;
  proxy_temp_path $WORK/nginx/tmp/proxy;
  fastcgi_temp_path $WORK/nginx/tmp/fastcgi;
  uwsgi_temp_path $WORK/nginx/tmp/uwsgi;
  scgi_temp_path $WORK/nginx/tmp/scgi;
  upstream app {
    server 127.0.0.1:$STABLE weight=9;
    server 127.0.0.1:$CANARY weight=1;
    keepalive 128;
  }
  server {
    listen 127.0.0.1:$NGINX_PORT;
    location / {
      proxy_pass http://app;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
    }
  }
}
CONF

# --- HAProxy: weights 90:10, connection reuse.
HAPROXY_PORT=$(free_port)
cat > "$WORK/haproxy.cfg" <<CONF
global
  nbthread 2
  maxconn 4096
defaults
  mode http
  timeout connect 2s
  timeout client 30s
  timeout server 30s
  option forwardfor
  http-reuse always
frontend fe
  bind 127.0.0.1:$HAPROXY_PORT
  default_backend app
backend app
  balance roundrobin
  server stable 127.0.0.1:$STABLE weight 90
  server canary 127.0.0.1:$CANARY weight 10
CONF

# CPU time (utime + stime, in clock ticks) used so far by a process and its children
# (nginx's workers are children of its master).
cpu_ticks() {
  local total=0 pid
  for pid in "$1" $(pgrep -P "$1" || true); do
    if [ -r "/proc/$pid/stat" ]; then
      total=$((total + $(awk '{print $14 + $15}' "/proc/$pid/stat")))
    fi
  done
  echo "$total"
}

# Runs the load generator; prints "rps p50_ms p99_ms requests".
measure() {
  local url=$1
  if [ "$LOADGEN" = wrk ]; then
    wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency "$url" > "$WORK/out.txt"
    python3 - "$WORK/out.txt" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
def ms(v):
    n, unit = re.match(r"([\d.]+)(us|ms|s|m)", v).groups()
    return float(n) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
p50 = ms(re.search(r"^\s+50%\s+(\S+)", text, re.M).group(1))
p99 = ms(re.search(r"^\s+99%\s+(\S+)", text, re.M).group(1))
errors = re.search(r"Non-2xx or 3xx responses: (\d+)|Socket errors: (.*)", text)
if errors:
    print("warning: " + errors.group(0), file=sys.stderr)
total = int(re.search(r"(\d+) requests in", text).group(1))
print(f"{rps:.0f} {p50:.3f} {p99:.3f} {total}")
PY
  else
    oha -z "$DURATION" -c "$CONNECTIONS" --no-tui --output-format json "$url" > "$WORK/out.json"
    python3 - "$WORK/out.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
p = d["latencyPercentiles"]
rps = d["summary"]["requestsPerSec"]
print(f'{rps:.0f} {p["p50"]*1000:.3f} {p["p99"]*1000:.3f} {rps * d["summary"]["total"]:.0f}')
PY
  fi
}

# Results per target: "rps p50_ms p99_ms cpu_us_per_request" (cpu "-" when unknown).
declare -A RESULT
TICK_US=$((1000000 / $(getconf CLK_TCK)))
run() {
  local name=$1 port=$2 pid=${3:-}
  wait_for "$port"
  # A short warm-up fills connection pools before the measured run.
  curl -s -o /dev/null "http://127.0.0.1:$port/" || true
  local before=0 after=0 rps p50 p99 total cpu=-
  [ -n "$pid" ] && before=$(cpu_ticks "$pid")
  read -r rps p50 p99 total <<< "$(measure "http://127.0.0.1:$port/")"
  if [ -n "$pid" ] && [ "$total" -gt 0 ]; then
    after=$(cpu_ticks "$pid")
    cpu=$(python3 -c "print(f'{($after - $before) * $TICK_US / $total:.1f}')")
  fi
  RESULT[$name]="$rps $p50 $p99 $cpu"
  echo "$name: ${RESULT[$name]}" >&2
}

run direct "$STABLE" "$STABLE_PID"

ROUTER_PORT=$(free_port)
"$BIN/bench_router" "127.0.0.1:$ROUTER_PORT" "127.0.0.1:$STABLE" "127.0.0.1:$CANARY" metrics-on & ROUTER_PID=$!
PIDS+=($ROUTER_PID)
run rampart "$ROUTER_PORT" "$ROUTER_PID"
kill "$ROUTER_PID"; wait "$ROUTER_PID" 2>/dev/null || true

ROUTER_PORT=$(free_port)
"$BIN/bench_router" "127.0.0.1:$ROUTER_PORT" "127.0.0.1:$STABLE" "127.0.0.1:$CANARY" metrics-off & ROUTER_PID=$!
PIDS+=($ROUTER_PID)
run rampart_nometrics "$ROUTER_PORT" "$ROUTER_PID"
kill "$ROUTER_PID"; wait "$ROUTER_PID" 2>/dev/null || true

if [ -n "${BASELINE_ROUTER:-}" ]; then
  ROUTER_PORT=$(free_port)
  "$BASELINE_ROUTER" "127.0.0.1:$ROUTER_PORT" "127.0.0.1:$STABLE" "127.0.0.1:$CANARY" metrics-on & ROUTER_PID=$!
  PIDS+=($ROUTER_PID)
  run baseline "$ROUTER_PORT" "$ROUTER_PID"
  kill "$ROUTER_PID"; wait "$ROUTER_PID" 2>/dev/null || true
fi

"$NGINX" -c "$WORK/nginx/nginx.conf" -p "$WORK/nginx" & NGINX_PID=$!; PIDS+=($NGINX_PID)
run nginx "$NGINX_PORT" "$NGINX_PID"

"$HAPROXY" -f "$WORK/haproxy.cfg" -db & HAPROXY_PID=$!; PIDS+=($HAPROXY_PID)
run haproxy "$HAPROXY_PORT" "$HAPROXY_PID"

NGINX_VERSION=$("$NGINX" -v 2>&1 | sed 's/.*nginx\///' || true)
HAPROXY_VERSION=$("$HAPROXY" -v 2>/dev/null | awk 'NR==1 {print $3}' || true)
read -r R_RPS R_P50 R_P99 R_CPU <<< "${RESULT[rampart]}"
echo
echo "Load: $LOADGEN, $THREADS threads, $CONNECTIONS connections, $DURATION per target; upstream: bench_upstream x2; split 90/10."
echo
echo "CPU µs/req: CPU time of the proxy's process(es) (the upstream's for direct) per request."
echo
echo "| target | requests/s | p50 ms | p99 ms | CPU µs/req | throughput vs rampart | p99 vs rampart |"
echo "|---|---:|---:|---:|---:|---:|---:|"
for name in direct rampart rampart_nometrics baseline nginx haproxy; do
  [ -n "${RESULT[$name]:-}" ] || continue
  read -r RPS P50 P99 CPU <<< "${RESULT[$name]}"
  label=$name
  case $name in
    direct) label="direct to upstream (no proxy)";;
    rampart) label="rampart router (metrics on)";;
    rampart_nometrics) label="rampart router (metrics off)";;
    baseline) label="baseline router (metrics on)";;
    nginx) label="nginx $NGINX_VERSION";;
    haproxy) label="HAProxy $HAPROXY_VERSION";;
  esac
  python3 -c "print(f'| $label | $RPS | $P50 | $P99 | $CPU | {$RPS/$R_RPS:.2f}x | {$P99/$R_P99:.2f}x |')"
done
