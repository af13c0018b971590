#!/usr/bin/env bash
# ClusterIP data-path figures: direct-to-backend vs through the agent, side by side in one run,
# inside two throwaway network namespaces (never the host's own network stack).
#
#   node ns  192.0.2.1   edgemesh agent (release build) + the clients (iperf3, wrk, curl)
#   Both TCP paths are measured: "kernel" (default: nftables fast path DNAT) and "proxy"
#   (kernelFastPath: false, the userspace transparent proxy), each against its own direct run.
#   A third TCP path, "kernel-mono", measures only new connections: the fast path with
#   monotonicTcpTimestamps: true (docs/proxier.md, "New connections and TIME_WAIT").
#   pod  ns  192.0.2.11  http_server :8080 (scripts/bench/http_server.rs) + iperf3 -s :5201
#   Service bench/web 10.96.0.10: 80 -> 8080, 5201 -> 5201; bulk services in 10.97.0.0/16
#
# Prints one markdown table (docs/benchmarks.md explains it). Needs root, iperf3, wrk, curl,
# python3, rustc (apt-get install iperf3 wrk curl python3: done here when missing).
#   DURATION=10 scripts/bench-datapath.sh
#   EDGEMESH_BIN=/path/to/edgemesh DURATION=10 scripts/bench-datapath.sh
#   ONLY=newconn DURATION=5 scripts/bench-datapath.sh   # new connections/s only (~5 min: each
#                                                       # pair waits out the pod's TIME_WAIT)
#   ONLY=proxy DURATION=5 scripts/bench-datapath.sh     # the userspace proxy's iperf3 and wrk
#                                                       # rows and agent CPU only (~1 min)
#   ONLY=newconn PATHS=proxy DURATION=5 scripts/bench-datapath.sh  # new connections through the
#                                                       # proxy only, with agent CPU µs each
set -euo pipefail

DURATION=${DURATION:-10}
ONLY=${ONLY:-all}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}

[ "$(id -u)" = 0 ] || { echo "bench-datapath.sh: needs root (creates network namespaces)" >&2; exit 1; }
missing=()
for tool in iperf3 wrk curl; do command -v "$tool" >/dev/null || missing+=("$tool"); done
if [ ${#missing[@]} -gt 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

PREFIX=emdp
# shellcheck source=scripts/bench/node-pod.sh
source "$ROOT/scripts/bench/node-pod.sh"
rustc -O --edition 2021 "$ROOT/scripts/bench/http_server.rs" -o "$WORK/http_server"
ip -n "$NODE" route add 10.96.0.0/12 dev eth0

ip netns exec "$POD" "$WORK/http_server" 192.0.2.11:8080 2>/dev/null &
PIDS+=($!)
ip netns exec "$POD" iperf3 -s -B 192.0.2.11 -p 5201 >/dev/null 2>&1 &
PIDS+=($!)

MANIFESTS=$WORK/manifests
mkdir -p "$MANIFESTS"
cat >"$MANIFESTS/web.yaml" <<'EOF'
apiVersion: v1
kind: Service
metadata: {name: web, namespace: bench}
spec:
  clusterIP: 10.96.0.10
  ports: [{name: http, port: 80, targetPort: 8080}, {name: iperf, port: 5201, targetPort: 5201}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: web-x, namespace: bench, labels: {kubernetes.io/service-name: web}}
addressType: IPv4
ports: [{name: http, port: 8080}, {name: iperf, port: 5201}]
endpoints: [{addresses: ["192.0.2.11"], conditions: {ready: true}}]
EOF

# --- the agent ------------------------------------------------------------------------------
ADMIN=""
start_agent() { # backend [kernelFastPath: true|false] [monotonicTcpTimestamps: true|false]
  printf 'apiVersion: agent.edgemesh.config.kubeedge.io/v1alpha1\nkind: EdgeMeshAgent\nmodules:\n  edgeDNS:\n    enable: false\n  edgeProxy:\n    enable: true\n    backend: %s\n    kernelFastPath: %s\n    monotonicTcpTimestamps: %s\n' "$1" "${2:-true}" "${3:-false}" >"$WORK/config.yaml"
  ip netns exec "$NODE" "$BIN" agent --manifests "$MANIFESTS" --node-name bench-node \
    --admin-addr 127.0.0.1:0 --config "$WORK/config.yaml" >"$WORK/agent-$1.log" 2>&1 &
  MEASURED=$!
  for _ in $(seq 1 200); do
    ADMIN=$(grep 'admin endpoint listening' "$WORK/agent-$1.log" | grep -o 'listen\.addr=[0-9.:]*' | cut -d= -f2 || true)
    [ -n "$ADMIN" ] && in_node curl -sf "http://$ADMIN/readyz" >/dev/null 2>&1 && break
    sleep 0.05
  done
  wait_rule "$1" 10.96.0.10 || { cat "$WORK/agent-$1.log" >&2; exit 1; }
}
stop_agent() {
  kill "$MEASURED"; wait "$MEASURED" 2>/dev/null || true; MEASURED=""
  in_node "$BIN" agent --cleanup >/dev/null 2>&1
}
has_rule() { # backend ip
  if [ "$1" = nftables ]; then
    in_node nft get element inet edgemesh svc4 "{ $2 . tcp . 80 }" >/dev/null 2>&1
  else
    # Through a file: `grep -q` closing the pipe early would fail the pipeline (pipefail).
    in_node iptables-save -t nat >"$WORK/nat.txt" && grep -q -- "-d $2/32 " "$WORK/nat.txt"
  fi
}
wait_rule() { # backend ip: polls every 10 ms (plus the listing's own time), at most ~60 s
  for _ in $(seq 1 6000); do has_rule "$1" "$2" && return 0; sleep 0.01; done
  echo "rule for $2 never appeared" >&2; return 1
}
metric() { in_node curl -sf "http://$ADMIN/metrics" | awk -v m="$1" '$1 == m {print $2}'; }
now_ms() { date +%s%3N; }
cluster_ip() { python3 -c "import ipaddress,sys; print(ipaddress.IPv4Address('10.97.0.0') + int(sys.argv[1]))" "$1"; }

# load_services BACKEND N: replaces the bulk manifest with N services; prints
# "end-to-end ms (file renamed into the directory -> last service's rule present), apply ms".
load_services() { # backend N [endpoint IPs, comma separated]
  python3 "$ROOT/scripts/bench/services.py" "$2" "${3:-192.0.2.11}" >"$WORK/bulk.staging"
  local last start
  last=$(cluster_ip $(($2 - 1)))
  start=$(now_ms)
  mv "$WORK/bulk.staging" "$MANIFESTS/bulk.yaml"
  wait_rule "$1" "$last"
  echo "$(($(now_ms) - start)) $(awk "BEGIN {printf \"%.0f\", $(metric edgemesh_proxier_last_sync_microseconds) / 1000}")"
}

# --- measurements ---------------------------------------------------------------------------
cpu_ticks() { awk '{print $14 + $15}' "/proc/$MEASURED/stat"; }
rss_kib() { awk -v k="${1:-VmRSS:}" '$1 == k {print $2}' "/proc/$MEASURED/status"; }
iperf_gbps() { # target
  in_node iperf3 -c "$1" -p 5201 -t "$DURATION" -J |
    python3 -c "import json,sys; print('%.2f' % (json.load(sys.stdin)['end']['sum_received']['bits_per_second'] / 1e9))"
}
# wrk_run URL CONNS: "requests/s p50_us p99_us"
wrk_run() {
  local threads=2
  [ "$2" = 1 ] && threads=1
  in_node wrk -t"$threads" -c"$2" -d"${DURATION}s" --latency "$1" | awk '
    function us(v) { if (v ~ /us$/) return v + 0; if (v ~ /ms$/) return v * 1000; if (v ~ /s$/) return v * 1e6; return v }
    /Requests\/sec/ { rps = $2 } $1 == "50%" { p50 = us($2) } $1 == "99%" { p99 = us($2) }
    END { printf "%.0f %.0f %.0f\n", rps, p50, p99 }'
}
# first_connections URLs...: median time (µs) from connect() to the first response byte, one
# new connection per URL, timed inside one python process (curl's process start, ~0.4 ms,
# would drown the kernel's share).
first_connections() {
  in_node python3 - "$@" <<'PY'
import socket, statistics, sys, time, urllib.parse
samples = []
for url in sys.argv[1:]:
    u = urllib.parse.urlsplit(url)
    start = time.perf_counter()
    with socket.create_connection((u.hostname, u.port or 80), timeout=5) as s:
        s.sendall(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n")
        s.recv(1)
    samples.append((time.perf_counter() - start) * 1e6)
print("%.0f" % statistics.median(samples))
PY
}
sample_urls() { # N: 20 never-contacted ClusterIPs spread over the N services
  for i in $(seq 0 19); do echo "http://$(cluster_ip $((i * $1 / 20 + 1)))/"; done
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", (b > 0) ? a / b : 0}'; }
field() { echo "$1" | awk -v i="$2" '{print $i}'; }

# New connections: wrk with `Connection: close` (http_server closes first, so the TIME_WAIT is
# on the pod's side, as with a real server), one new connection per request.
counter() { ip netns exec "$1" nstat -saz "$2" | awk -v n="$2" '$1 == n {print $2}'; } # ns name
# newconn_run URL: "connections/s, client SYN retransmits, SYNs the pod's TIME_WAIT refused (PAWS)"
newconn_run() {
  local syn paws rps
  syn=$(counter "$NODE" TcpExtTCPSynRetrans)
  paws=$(counter "$POD" TcpExtPAWSTimewait)
  rps=$(in_node wrk -t2 -c16 -d"${DURATION}s" -H 'Connection: close' "$1" | awk '/Requests\/sec/ {printf "%.0f", $2}')
  echo "$rps $(($(counter "$NODE" TcpExtTCPSynRetrans) - syn)) $(($(counter "$POD" TcpExtPAWSTimewait) - paws))"
}
# Every pair starts with no TIME_WAIT left on the pod by earlier runs (60 s; polled, <= 75 s).
settle_time_wait() {
  for _ in $(seq 1 150); do
    [ "$(in_pod ss -Htan state time-wait | wc -l)" = 0 ] && return 0
    sleep 0.5
  done
  echo "the pod still has TIME_WAIT sockets after 75 s" >&2
}
declare -A NEWCONN NEWCONN_CPU
# newconn_pair PATH: direct, then through the ClusterIP within the same minute, as a node that
# reaches the pod both ways does.
newconn_pair() {
  echo "$1 path: new connections (wrk Connection: close, 16 conn)..." >&2
  settle_time_wait
  NEWCONN[direct-$1]=$(newconn_run http://192.0.2.11:8080/)
  local ticks; ticks=$(cpu_ticks)
  NEWCONN[$1]=$(newconn_run http://10.96.0.10/)
  NEWCONN_CPU[$1]=$(cpu_per_request "$ticks" "$(field "${NEWCONN[$1]}" 1)")
}
# cpu_per_request TICKS RPS: the agent's CPU (user + system) per request since TICKS, in µs, for a
# run of DURATION seconds at RPS requests/s.
cpu_per_request() {
  awk -v t="$(($(cpu_ticks) - $1))" -v hz="$(getconf CLK_TCK)" -v n="$2" -v d="$DURATION" \
    'BEGIN {printf "%.0f", (n > 0) ? t / hz * 1e6 / (n * d) : 0}'
}

cpu_since() { # ticks seconds: % of one core the agent used since then
  awk -v t="$(($(cpu_ticks) - $1))" -v s="$2" -v e="$(date +%s.%N)" -v hz="$(getconf CLK_TCK)" 'BEGIN {printf "%.0f", 100 * t / hz / (e - s)}'
}
echo "load before: $(uptime)" >&2
declare -A IPERF WRK CPU
# Each path is measured right after its own direct baseline, so both see the same machine load.
# kernel: the default (nftables fast path DNAT); proxy: kernelFastPath false (userspace splice).
PATHS=${PATHS:-kernel kernel-mono proxy}
[ "$ONLY" = proxy ] && PATHS=proxy
for path in $PATHS; do
  start_agent nftables "$([ "$path" = proxy ] && echo false || echo true)" \
    "$([ "$path" = kernel-mono ] && echo true || echo false)"
  [ "$ONLY" = proxy ] || newconn_pair "$path"
  if [ "$path" = kernel ]; then
    # ClusterIP only, once the pod's TIME_WAIT of the pair is gone: the node's conntrack still
    # holds the direct connections (TIME_WAIT, 120 s), so masquerade still moves ports.
    settle_time_wait
    NEWCONN[kernel-alone]=$(newconn_run http://10.96.0.10/)
  fi
  if [ "$path" = kernel-mono ]; then
    stop_agent
    in_node sysctl -qw net.ipv4.tcp_timestamps=1 # the agent leaves it at 2 (docs/proxier.md)
    continue
  fi
  if [ "$ONLY" = newconn ]; then stop_agent; continue; fi
  echo "$path path: bulk TCP (iperf3 ${DURATION}s)..." >&2
  IPERF[direct-$path]=$(iperf_gbps 192.0.2.11)
  T0=$(cpu_ticks); S0=$(date +%s.%N)
  IPERF[$path]=$(iperf_gbps 10.96.0.10)
  CPU[iperf-$path]=$(cpu_since "$T0" "$S0")
  for c in 1 16 64; do
    echo "$path path: wrk ${c} connections..." >&2
    WRK[direct-$path-$c]=$(wrk_run http://192.0.2.11:8080/ "$c")
    T0=$(cpu_ticks); S0=$(date +%s.%N)
    WRK[$path-$c]=$(wrk_run http://10.96.0.10/ "$c")
    CPU[wrk-$path-$c]=$(cpu_since "$T0" "$S0")
  done
  RSS_LOAD=$(rss_kib); HWM_LOAD=$(rss_kib VmHWM:)
  stop_agent
done

# --- the tables -----------------------------------------------------------------------------
newconn_table() {
  echo
  echo "| new connections/s (wrk -c16 -t2, Connection: close) | direct | through the agent | agent / direct | SYN retransmits / PAWS-refused SYNs (agent run) | agent CPU µs / new connection |"
  echo "|---|---:|---:|---:|---:|---:|"
  for path in $PATHS; do
    d=${NEWCONN[direct-$path]}; a=${NEWCONN[$path]}
    echo "| $path | $(field "$d" 1) | $(field "$a" 1) | $(ratio "$(field "$a" 1)" "$(field "$d" 1)") | $(field "$a" 2) / $(field "$a" 3) | ${NEWCONN_CPU[$path]} |"
  done
  [ -n "${NEWCONN[kernel-alone]:-}" ] || return 0
  a=${NEWCONN[kernel-alone]}; d=${NEWCONN[direct-kernel]}
  echo "| kernel, ClusterIP only, 60 s after the pair | $(field "$d" 1) | $(field "$a" 1) | $(ratio "$(field "$a" 1)" "$(field "$d" 1)") | $(field "$a" 2) / $(field "$a" 3) | – |"
}
if [ "$ONLY" = newconn ]; then
  echo "load after: $(uptime)" >&2
  newconn_table
  exit 0
fi
start_agent nftables

echo "services: first connections, sync times, memory..." >&2
FIRST_DIRECT=$(first_connections $(for _ in $(seq 1 20); do echo http://192.0.2.11:8080/; done))
declare -A SYNC FIRST
SYNC[nftables-100]=$(load_services nftables 100)
sleep 2 # let the agent finish with the new Snapshot: the figure is the kernel's lookup cost
FIRST[100]=$(first_connections $(sample_urls 100))
SYNC[nftables-1000]=$(load_services nftables 1000)
sleep 1
RSS_1000=$(rss_kib)
SYNC[nftables-10000]=$(load_services nftables 10000)
sleep 2
FIRST[10000]=$(first_connections $(sample_urls 10000))
RSS_10000=$(rss_kib)
# Two endpoints each: every service needs its own numgen chain (one endpoint is a map entry).
rm "$MANIFESTS/bulk.yaml"
sleep 1
SYNC[nftables-10000-2ep]=$(load_services nftables 10000 192.0.2.11,192.0.2.12)
rm "$MANIFESTS/bulk.yaml"
stop_agent
start_agent iptables
SYNC[iptables-1000]=$(load_services iptables 1000)
SYNC[iptables-10000]=$(load_services iptables 10000)
rm "$MANIFESTS/bulk.yaml"
stop_agent
echo "load after: $(uptime)" >&2

throughput_table() { # paths...
  echo
  echo "| figure | path | direct | through the agent | agent / direct |"
  echo "|---|---|---:|---:|---:|"
  for path in "$@"; do
    d=${IPERF[direct-$path]}; a=${IPERF[$path]}
    echo "| bulk TCP (iperf3, 1 stream), Gbit/s | $path | $d | $a | $(ratio "$a" "$d") |"
    for c in 1 16 64; do
      d=${WRK[direct-$path-$c]}; a=${WRK[$path-$c]}
      echo "| HTTP requests/s, $c conn (wrk) | $path | $(field "$d" 1) | $(field "$a" 1) | $(ratio "$(field "$a" 1)" "$(field "$d" 1)") |"
      echo "| HTTP p50 / p99 latency, $c conn, µs | $path | $(field "$d" 2) / $(field "$d" 3) | $(field "$a" 2) / $(field "$a" 3) | $(printf '%+d' $(($(field "$a" 3) - $(field "$d" 3)))) µs p99 |"
    done
  done
}
cpu_table() { # paths...
  echo
  echo "| agent | value |"
  echo "|---|---:|"
  for path in "$@"; do
    echo "| CPU during iperf3, $path path (% of one core) | ${CPU[iperf-$path]} |"
    for c in 1 16 64; do echo "| CPU during wrk $c conn, $path path (% of one core) | ${CPU[wrk-$path-$c]} |"; done
  done
}
if [ "$ONLY" = proxy ]; then
  echo "load after: $(uptime)" >&2
  throughput_table proxy
  cpu_table proxy
  exit 0
fi

newconn_table
throughput_table kernel proxy
echo "| first connection (connect → first byte, median of 20), µs: 100 services | kernel | $FIRST_DIRECT | ${FIRST[100]} | |"
echo "| first connection, µs: 10,000 services | kernel | $FIRST_DIRECT | ${FIRST[10000]} | 10k / 100: $(ratio "${FIRST[10000]}" "${FIRST[100]}") |"
cpu_table kernel proxy
echo "| RSS after the proxy-path load runs (peak), MiB | $(awk "BEGIN {printf \"%.1f (%.1f)\", $RSS_LOAD / 1024, $HWM_LOAD / 1024}") |"
echo "| RSS with 1,000 services, MiB | $(awk "BEGIN {printf \"%.1f\", $RSS_1000 / 1024}") |"
echo "| RSS with 10,000 services, MiB | $(awk "BEGIN {printf \"%.1f\", $RSS_10000 / 1024}") |"
for key in nftables-100 nftables-1000 nftables-10000 nftables-10000-2ep iptables-1000 iptables-10000; do
  name="${key/-/ } services"; name=${name/-2ep services/ services, 2 endpoints each}
  echo "| sync $name: file written → rule present / proxier apply, ms | $(field "${SYNC[$key]}" 1) / $(field "${SYNC[$key]}" 2) |"
done
