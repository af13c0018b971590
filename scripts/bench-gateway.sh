#!/usr/bin/env bash
# Ingress gateway figures: direct to the backend vs through `edgemesh gateway` vs through an nginx
# reverse proxy with the same route, side by side in one run, plain HTTP and TLS, inside two
# throwaway network namespaces (never the host's own network stack).
#
#   node ns  192.0.2.1   edgemesh gateway :23333 (HTTP) :23443 (HTTPS, terminated)
#                        nginx proxy      :8081  (HTTP) :8443  (HTTPS)   + the wrk clients
#   pod  ns  192.0.2.11  nginx backend    :8080  `return 200 "ok\n"`, keep-alive
#
# nginx proxy: worker_processes 2 (the gateway's 2 worker threads), upstream keepalive 64,
# proxy_http_version 1.1. Same self-signed RSA-2048 cert for both TLS fronts, TLS 1.3 default.
# Then gateway RSS (VmRSS/VmHWM) idle and after load, and with 1,000 VirtualServices: RSS, the
# compile time the gateway logs, and file-written → /debug/routes-shows-1,000 latency.
# Needs root, wrk, nginx-light, curl, openssl, python3 (apt-installed when missing).
#   DURATION=5 scripts/bench-gateway.sh
#   EDGEMESH_BIN=/path/to/edgemesh scripts/bench-gateway.sh
#   PERF_OUT=/tmp/gw.txt CONNS=64 scripts/bench-gateway.sh   # also profile the gateway (perf)
#     during its keep-alive HTTP run: the hottest call chains in PERF_OUT, the data in
#     PERF_OUT.data (perf report -i PERF_OUT.data --no-children --sort sym)
#   GW_LOG='info,edgemesh_gateway=debug' scripts/bench-gateway.sh   # the gateway's log filter
#     (default: its own, access log off, plus the route-table compile timings read below)
#   ONLY=rss scripts/bench-gateway.sh   # memory only: no nginx proxy and no load; the gateway's
#     RSS idle (after its warm-up requests) and with the 1,000 VirtualServices. For cold-cache
#     figures drop the page cache first: sync; echo 3 > /proc/sys/vm/drop_caches
# The last column is CPU time (user + system) per request of the gateway and of the nginx proxy
# (all its processes): the figure that holds on a noisy machine, where req/s moves with
# whatever else shares the cores.
set -euo pipefail

ONLY=${ONLY:-}
case "$ONLY" in "" | rss) ;; *) echo "bench-gateway.sh: ONLY=$ONLY: only ONLY=rss is known" >&2; exit 2 ;; esac
DURATION=${DURATION:-5}
CONNS=${CONNS:-"1 16 64"}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}

[ "$(id -u)" = 0 ] || { echo "bench-gateway.sh: needs root (creates network namespaces)" >&2; exit 1; }
missing=()
command -v wrk >/dev/null || missing+=(wrk)
command -v nginx >/dev/null || missing+=(nginx-light)
command -v curl >/dev/null || missing+=(curl)
command -v openssl >/dev/null || missing+=(openssl)
if [ ${#missing[@]} -gt 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
NGINX=$(command -v nginx)

PREFIX=emgw
# shellcheck source=scripts/bench/node-pod.sh
source "$ROOT/scripts/bench/node-pod.sh"
echo "machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg), nothing pinned"

openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=bench.example \
  -addext subjectAltName=DNS:bench.example -keyout "$WORK/tls.key" -out "$WORK/tls.crt" 2>/dev/null

nginx_conf() { # name, http block body
  mkdir -p "$WORK/$1"
  cat >"$WORK/$1/nginx.conf" <<CONF
worker_processes 2;
pid $WORK/$1/nginx.pid;
error_log $WORK/$1/error.log warn;
daemon off;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000000;
  client_body_temp_path $WORK/$1; proxy_temp_path $WORK/$1; fastcgi_temp_path $WORK/$1;
  uwsgi_temp_path $WORK/$1; scgi_temp_path $WORK/$1;
  $2
}
CONF
}
nginx_conf backend 'server { listen 192.0.2.11:8080 reuseport; location / { return 200 "ok\n"; } }'
nginx_conf proxy "upstream web { server 192.0.2.11:8080; keepalive 64; }
  server {
    listen 192.0.2.1:8081 reuseport;
    listen 192.0.2.1:8443 ssl reuseport;
    ssl_certificate $WORK/tls.crt; ssl_certificate_key $WORK/tls.key;
    location / { proxy_pass http://web; proxy_http_version 1.1; proxy_set_header Connection \"\"; }
  }"
ip netns exec "$POD" "$NGINX" -c "$WORK/backend/nginx.conf" &
BACKEND=$!
PIDS+=($!)
if [ -z "$ONLY" ]; then  # the nginx proxy (not with ONLY=rss)
  ip netns exec "$NODE" "$NGINX" -c "$WORK/proxy/nginx.conf" &  # not in_node: $! must be nginx itself
  NGINX_PROXY=$!
  PIDS+=($!)
fi

MANIFESTS=$WORK/manifests
mkdir -p "$MANIFESTS"
b64() { base64 -w0 "$1"; }
cat >"$MANIFESTS/web.yaml" <<YAML
apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec:
  clusterIP: 10.96.0.10
  ports: [{name: http, port: 80, targetPort: 8080, protocol: TCP}]
---
apiVersion: v1
kind: Endpoints
metadata: {name: web, namespace: default}
subsets:
  - addresses: [{ip: 192.0.2.11}]
    ports: [{name: http, port: 8080, protocol: TCP}]
---
apiVersion: v1
kind: Secret
metadata: {name: bench-cert, namespace: default}
type: kubernetes.io/tls
data:
  tls.crt: $(b64 "$WORK/tls.crt")
  tls.key: $(b64 "$WORK/tls.key")
---
apiVersion: networking.istio.io/v1beta1
kind: Gateway
metadata: {name: edgemesh-gateway, namespace: default}
spec:
  selector: {kubeedge: edgemesh-gateway}
  servers:
    - port: {number: 23333, name: http, protocol: HTTP}
      hosts: ['*']
    - port: {number: 23443, name: https, protocol: HTTPS}
      hosts: ['*']
      tls: {mode: SIMPLE, credentialName: bench-cert}
---
apiVersion: networking.istio.io/v1beta1
kind: VirtualService
metadata: {name: web, namespace: default}
spec:
  gateways: [edgemesh-gateway]
  hosts: ['*']
  http:
    - route:
        - destination: {host: web, port: {number: 80}}
YAML
printf 'modules:\n  edgeGateway:\n    enable: true\n  edgeTunnel:\n    enable: false\n' >"$WORK/config.yaml"
ip netns exec "$NODE" "$BIN" gateway -c "$WORK/config.yaml" --manifests "$MANIFESTS" --node-name n1 \
  --admin-addr 127.0.0.1:0 --listen-address 192.0.2.1 --log-level "${GW_LOG:-info,edgemesh_gateway=debug,edgemesh_gateway::access=off}" \
  >"$WORK/gateway.log" 2>&1 &
MEASURED=$!

wait_for() { # what, seconds, command...
  local what=$1 limit=$2; shift 2
  for _ in $(seq $((limit * 20))); do "$@" >/dev/null 2>&1 && return 0; sleep 0.05; done
  echo "bench-gateway.sh: timed out waiting for $what" >&2; tail -20 "$WORK/gateway.log" >&2; exit 1
}
admin_addr() { sed -n 's/.*admin endpoint listening.* listen\.addr=\([0-9.:]*\).*/\1/p' "$WORK/gateway.log" | head -1; }
wait_for "admin address" 20 grep -q "admin endpoint listening" "$WORK/gateway.log"
ADMIN=$(admin_addr)
PROXY_URLS=(http://192.0.2.1:8081/ https://192.0.2.1:8443/)
[ -z "$ONLY" ] || PROXY_URLS=()
for url in http://192.0.2.11:8080/ http://192.0.2.1:23333/ "${PROXY_URLS[@]}" https://192.0.2.1:23443/; do
  wait_for "$url" 20 in_node curl -sfk "$url"
done

rss() {
  awk '/^VmRSS|^VmHWM/ {printf "%s %.1f MiB  ", $1, $2/1024}' "/proc/$MEASURED/status"
  # What the resident pages are: the binary's own (file) or the heap and stacks (anon).
  awk '/^(Anonymous|Pss_File):/ {printf "%s %.1f MiB  ", $1, $2/1024}' "/proc/$MEASURED/smaps_rollup"
}
echo "gateway idle: $(rss)"

if [ -z "$ONLY" ]; then  # the load runs (not with ONLY=rss)
# CPU time (user + system, all threads) the given processes used, in clock ticks.
cpu_ticks() {
  local total=0 u s
  for pid in "$@"; do
    read -r u s < <(awk '{print $14, $15}' "/proc/$pid/stat")
    total=$((total + u + s))
  done
  echo "$total"
}
CLK_TCK=$(getconf CLK_TCK)
# The nginx proxy's master and workers.
NGINX_PROXY_PIDS="$NGINX_PROXY $(pgrep -P "$NGINX_PROXY" | tr '\n' ' ')"

# wrk's --latency block → "p50 p99 rps cpu" (µs for the latencies; cpu: µs of CPU the processes
# `pids` spent per request, the figure that survives a noisy machine: wrk, the backend and the
# proxy share its cores, so req/s moves with everything else running).
run_wrk() { # url conns "pids" [extra wrk args]
  local url=$1 c=$2 pids=$3 before after p50 p99 rps requests; shift 3
  in_node wrk -t "$(( c < 2 ? 1 : 2 ))" -c "$c" -d 1s "$@" "$url" >/dev/null 2>&1 || true
  before=$(cpu_ticks $pids)
  read -r p50 p99 rps requests < <(in_node wrk -t "$(( c < 2 ? 1 : 2 ))" -c "$c" -d "${DURATION}s" --latency "$@" "$url" | python3 "$ROOT/scripts/bench/wrk_summary.py")
  after=$(cpu_ticks $pids)
  echo "$p50 $p99 $rps $(( (after - before) * 1000000 / CLK_TCK / requests ))"
}

echo
echo "| path | proto | conns | direct req/s | gateway req/s | nginx req/s | direct p50/p99 µs | gateway p50/p99 µs | nginx p50/p99 µs | gateway / nginx CPU µs per request |"
echo "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"
for c in $CONNS; do
  read -r d50 d99 drps _ < <(run_wrk http://192.0.2.11:8080/ "$c" "$BACKEND")
  perf_pid=""
  if [ -n "${PERF_OUT:-}" ]; then
    perf record -q -F 499 --call-graph "${PERF_CALLGRAPH:-dwarf,16384}" -p "$MEASURED" -o "$WORK/perf.data" -- sleep "$((DURATION + 1))" 2>/dev/null &
    perf_pid=$!
  fi
  read -r g50 g99 grps gcpu < <(run_wrk http://192.0.2.1:23333/ "$c" "$MEASURED")
  if [ -n "$perf_pid" ]; then
    wait "$perf_pid" || true
    perf report -i "$WORK/perf.data" --children --percent-limit 2 --stdio -g none >"$PERF_OUT" 2>/dev/null
    mv "$WORK/perf.data" "$PERF_OUT.data"  # for perf report -i
  fi
  read -r n50 n99 nrps ncpu < <(run_wrk http://192.0.2.1:8081/ "$c" "$NGINX_PROXY_PIDS")
  echo "| keep-alive | HTTP | $c | $drps | $grps | $nrps | $d50/$d99 | $g50/$g99 | $n50/$n99 | $gcpu / $ncpu |"
done
for c in $CONNS; do
  read -r g50 g99 grps gcpu < <(run_wrk https://192.0.2.1:23443/ "$c" "$MEASURED")
  read -r n50 n99 nrps ncpu < <(run_wrk https://192.0.2.1:8443/ "$c" "$NGINX_PROXY_PIDS")
  echo "| keep-alive | TLS | $c | – | $grps | $nrps | – | $g50/$g99 | $n50/$n99 | $gcpu / $ncpu |"
done
# A new TLS connection per request: handshakes/s.
read -r g50 g99 grps gcpu < <(run_wrk https://192.0.2.1:23443/ 16 "$MEASURED" -H 'Connection: close')
read -r n50 n99 nrps ncpu < <(run_wrk https://192.0.2.1:8443/ 16 "$NGINX_PROXY_PIDS" -H 'Connection: close')
echo "| new conn each | TLS handshakes | 16 | – | $grps | $nrps | – | $g50/$g99 | $n50/$n99 | $gcpu / $ncpu |"
echo
# Full vs resumed handshakes, told apart: wrk resumes (its SSL_clear keeps the session), so the
# row above mixes both. `openssl s_time` (one client, one `GET /` per connection): `-new` makes
# every handshake full (an RSA-2048 signature each), `-reuse` resumes the first session. The
# request matters: a TLS 1.3 ticket arrives after the handshake, and a client that closes
# without reading gets one from nginx (sent with its first flight) but not from rustls.
run_stime() { # addr mode "pids" → "handshakes/s cpu-µs-per-handshake"
  local addr=$1 mode=$2 pids=$3 before after out n secs; before=$(cpu_ticks $pids)
  out=$(in_node openssl s_time -connect "$addr" "$mode" -www / -time "$DURATION" 2>/dev/null | grep 'real seconds' | tail -1)
  after=$(cpu_ticks $pids)
  read -r n secs < <(sed -E 's/^([0-9]+) connections in ([0-9.]+) real seconds.*/\1 \2/' <<<"$out")
  [ -n "$n" ] && [ "$n" -gt 0 ] || { echo "0 0"; return; }
  echo "$(( n / ${secs%.*} )) $(( (after - before) * 1000000 / CLK_TCK / n ))"
}
echo "| TLS handshake + GET, one \`openssl s_time\` client | gateway /s | nginx /s | gateway / nginx CPU µs per connection |"
echo "|---|---:|---:|---:|"
for mode in -new -reuse; do
  read -r gh gc < <(run_stime 192.0.2.1:23443 "$mode" "$MEASURED")
  read -r nh nc < <(run_stime 192.0.2.1:8443 "$mode" "$NGINX_PROXY_PIDS")
  echo "| $mode | $gh | $nh | $gc / $nc |"
done
echo
echo "gateway after load: $(rss)"
fi

# 1,000 VirtualServices with distinct hosts on the one Gateway, written as one file (renamed in).
python3 "$ROOT/scripts/bench/gateway_vs.py" 1000 >"$WORK/vs1000.tmp"
count_routes() { in_node curl -sf "http://$ADMIN/debug/routes" | python3 -c 'import sys,re; print(len(set(re.findall(r"vs-\d+", sys.stdin.read()))))'; }
start=$(date +%s%N)
mv "$WORK/vs1000.tmp" "$MANIFESTS/vs1000.yaml"
wait_for "1,000 routes" 60 bash -c "[ \"\$(ip netns exec $NODE curl -sf http://$ADMIN/debug/routes | grep -o 'vs-[0-9]*' | sort -u | wc -l)\" -ge 1000 ]"
end=$(date +%s%N)
echo "1,000 VirtualServices: file written → /debug/routes shows $(count_routes) hosts in $(( (end - start) / 1000000 )) ms"
sleep 1
echo "route table compiles (last 3): $(grep -o 'route table compiled.*micros=[0-9]*' "$WORK/gateway.log" | tail -3 | sed 's/.*micros=/micros=/' | tr '\n' ' ')"
echo "gateway with 1,000 VirtualServices: $(rss)"
