#!/usr/bin/env bash
# Tunnel figures, side by side in one run (docs/tunnel.md explains them): throughput (iperf3,
# one stream, IPERF_SECONDS each) and echo RTT per path — raw link without the mesh, direct
# (same LAN), hole-punched (cone NATs), relayed — time to first byte on a cold path, and RSS
# per 1,000 idle tunnelled connections on each node (and the relay).
#
# Runs the ignored test `netns_bench_tunnel_figures` (crates/edgemesh-tunnel/tests/netns_bench.rs)
# in a release build: namespaces with NAT routers, `examples/tunnel-node` processes, iperf3 and
# python echo backends, all torn down afterwards. Needs root, iperf3 and python3.
# The build and the run are niced: the machine is shared.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target-tunnel}"

[ "$(id -u)" = 0 ] || { echo "bench-tunnel.sh: needs root (creates network namespaces)" >&2; exit 1; }
for tool in iperf3 python3; do
  command -v "$tool" >/dev/null || { echo "bench-tunnel.sh: $tool missing (apt-get install $tool)" >&2; exit 1; }
done

# The test starts the example `tunnel-node`: build it in the same (release) profile.
nice -n 15 cargo build -q --release -p edgemesh-tunnel --examples
nice -n 15 cargo test -q --release -p edgemesh-tunnel --test netns_bench --no-run
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
# Both ways of applying the PSK, one after the other: in the noise handshake (the default) and
# pnet (EdgeMesh-compatible); then the noise mode with `transport: quic`. TUNNEL_BENCH_MODES
# picks some of them ("noise quic").
log=$(mktemp)
trap 'rm -f "$log"' EXIT
for mode in ${TUNNEL_BENCH_MODES:-noise pnet quic}; do
  pnet=$([ "$mode" = pnet ] && echo 1 || true)
  quic=$([ "$mode" = quic ] && echo 1 || true)
  if ! TUNNEL_BENCH_PNET=$pnet TUNNEL_BENCH_QUIC=$quic nice -n 15 cargo test -q --release -p edgemesh-tunnel \
    --test netns_bench -- --ignored --nocapture --test-threads 1 >"$log" 2>&1; then
    # The figures measured so far and the error, without the backtrace.
    grep -vE '^\s+([0-9]+: |at )' "$log" | tail -n 40 >&2
    exit 1
  fi
  grep -E '^\|' "$log"
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
