#!/usr/bin/env bash
# Edge hub figures (issue #5): list latency for 1,000 and 10,000 pods direct vs through the hub
# online (uncached and cached client) vs offline from the cache; one-object get (the proxy's own
# overhead); hub start → first offline answer with the cache loaded; disk bytes per object.
# Loopback only, no root needed. Prints markdown tables.
set -euo pipefail
cd "$(dirname "$0")/.."
echo "machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
nice -n 15 cargo build -q --release -p edgemesh --bin edgemesh
EDGEMESH_BIN="$CARGO_TARGET_DIR/release/edgemesh" nice -n 15 cargo run -q --release -p edgemesh-hub --example hub_bench
