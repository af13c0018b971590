#!/usr/bin/env bash
# Tunnel figures. Today: runs the namespace test, which prints cold-path times and the UDP count.
# TODO: iperf3 direct vs through the tunnel (direct and relayed paths), RSS per 1,000 idle
# tunnelled connections.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target-tunnel}"
nice -n 15 cargo test -p edgemesh-tunnel --test netns_tunnel -- --nocapture 2>&1 \
  | grep -E "first byte|UDP:|test result"
