#!/usr/bin/env bash
# DNS figures: edgemesh-dns next to dnsmasq, in one run, inside a throwaway network namespace.
#
#   upstream  dnsmasq 127.0.0.2:53   authoritative for ext-I.example (local-ttl 300)
#   ours      bench_server 127.0.0.1:53   SERVICES cluster services, forwards to the upstream
#   baseline  dnsmasq 127.0.0.3:53   the same cluster names as host-records, caches the upstream
#
# Prints queries/s (dnsperf, unlimited rate) and latency percentiles (dnsperf -v at RATE q/s) for
# cluster names and for cached external names, and the resident memory of both servers.
# Needs root, dnsperf and dnsmasq (apt-get install dnsperf dnsmasq-base).
set -euo pipefail

SERVICES=${SERVICES:-10000}
DURATION=${DURATION:-10}
RATE=${RATE:-5000}
EXTERNAL=${EXTERNAL:-1000}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target-dns}

[ "$(id -u)" = 0 ] || { echo "bench-dns.sh: needs root (creates a network namespace)" >&2; exit 1; }
for tool in dnsperf dnsmasq ip; do
  command -v "$tool" >/dev/null || { echo "bench-dns.sh: missing $tool" >&2; exit 1; }
done

cargo build -q --release -p edgemesh-dns --example bench_server
SERVER=$CARGO_TARGET_DIR/release/examples/bench_server

NS=emdns-bench-$$
WORK=$(mktemp -d)
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  ip netns del "$NS" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
ip netns add "$NS"
ip -n "$NS" link set lo up
in_ns() { ip netns exec "$NS" "$@"; }

# Query files and server data.
awk -v n="$SERVICES" 'BEGIN { srand(1); for (i = 0; i < 20000; i++) printf "svc-%d.bench.svc.cluster.local A\n", int(rand() * n) }' >"$WORK/cluster.txt"
awk -v n="$EXTERNAL" 'BEGIN { for (i = 0; i < n; i++) printf "ext-%d.example A\n", i }' >"$WORK/external.txt"
awk -v n="$EXTERNAL" 'BEGIN { for (i = 0; i < n; i++) printf "host-record=ext-%d.example,192.0.2.%d\n", i, i % 250 + 1 }' >"$WORK/upstream.conf"
awk -v n="$SERVICES" 'BEGIN { for (i = 0; i < n; i++) { ip = 0x0a600000 + i;
  printf "host-record=svc-%d.bench.svc.cluster.local,%d.%d.%d.%d\n", i,
    int(ip / 16777216) % 256, int(ip / 65536) % 256, int(ip / 256) % 256, ip % 256 } }' >"$WORK/baseline.conf"

DNSMASQ=(dnsmasq --keep-in-foreground --no-resolv --no-hosts --bind-interfaces --port=53 --user=root)
# Started with `ip netns exec` directly (not through a shell function) so that $! is the server.
ip netns exec "$NS" "${DNSMASQ[@]}" --listen-address=127.0.0.2 --local-ttl=300 --conf-file="$WORK/upstream.conf" 2>"$WORK/upstream.log" &
PIDS+=($!)
ip netns exec "$NS" "${DNSMASQ[@]}" --listen-address=127.0.0.3 --server=127.0.0.2 --cache-size=10000 --local-ttl=30 \
  --conf-file="$WORK/baseline.conf" 2>"$WORK/baseline.log" &
PIDS+=($!)
BASELINE_PID=$!
ip netns exec "$NS" "$SERVER" 127.0.0.1:53 127.0.0.2:53 "$SERVICES" 2>"$WORK/ours.log" &
PIDS+=($!)
OURS_PID=$!

for _ in $(seq 50); do
  grep -q rss_kib "$WORK/ours.log" 2>/dev/null && break
  sleep 0.2
done
sleep 0.5

qps() { # server file -> "qps avg_ms lost"
  in_ns dnsperf -s "$1" -d "$2" -l "$DURATION" -c 4 -q 200 2>/dev/null | awk '
    /Queries per second:/ { q = $4 } /Queries lost:/ { lost = $3 } /Average Latency/ { a = $4 * 1000 }
    END { printf "%.0f %.3f %s", q, a, lost }'
}
percentiles() { # server file -> "p50 p99 p99.9" in ms at RATE q/s
  in_ns dnsperf -s "$1" -d "$2" -l 5 -Q "$RATE" -c 4 -v 2>/dev/null |
    awk '$1 == ">" { print $NF * 1000 }' | sort -n | awk '
      { v[NR] = $1 } END { if (NR == 0) { print "- - -"; exit }
        printf "%.3f %.3f %.3f", v[int(NR * 0.5) + 1], v[int(NR * 0.99) + 1], v[int(NR * 0.999) + 1] }'
}
rss() { awk '/VmRSS/ { printf "%.1f", $2 / 1024 }' "/proc/$1/status"; }

# Warm both caches with every external name.
for server in 127.0.0.1 127.0.0.3; do in_ns dnsperf -s "$server" -d "$WORK/external.txt" -n 1 >/dev/null 2>&1; done

printf '%-9s %-9s %10s %9s %9s %9s %9s %9s\n' server names "queries/s" "avg ms" lost "p50 ms" "p99 ms" "p99.9 ms"
for names in cluster external; do
  for pair in "edgemesh 127.0.0.1" "dnsmasq 127.0.0.3"; do
    set -- $pair
    read -r q avg lost <<<"$(qps "$2" "$WORK/$names.txt")"
    read -r p50 p99 p999 <<<"$(percentiles "$2" "$WORK/$names.txt")"
    printf '%-9s %-9s %10s %9s %9s %9s %9s %9s\n' "$1" "$names" "$q" "$avg" "$lost" "$p50" "$p99" "$p999"
  done
done
echo
echo "latency percentiles measured at $RATE queries/s; $SERVICES services; $(nproc) CPUs shared with dnsperf"
echo "edgemesh: $(grep rss_kib "$WORK/ours.log"); RSS now $(rss "$OURS_PID") MiB"
echo "dnsmasq (baseline): RSS $(rss "$BASELINE_PID") MiB"
