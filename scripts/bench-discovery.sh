#!/usr/bin/env bash
# Discovery figures (issue: agent spine): Snapshot rebuild time (criterion) and the agent's time
# to ready, RSS and change latency with 1,000 and 10,000 Services from the apiserver test double.
# Needs root (network namespaces). Prints markdown tables.
set -euo pipefail
cd "$(dirname "$0")/.."
echo "machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
cargo bench -q -p edgemesh-model --bench snapshot_build 2>&1 | grep -A2 '^snapshot/'
cargo build -q --release --bin edgemesh
EDGEMESH_BIN=$PWD/target/release/edgemesh cargo run -q --release -p edgemesh --example discovery_bench
