#!/usr/bin/env bash
# The README's "see it work" command: builds edgemesh, builds the playground (a cloud node and
# two LANs behind NAT routers, all in network namespaces: the host's own network is never
# touched), runs every check and prints the table, then removes everything again.
# Needs root for the namespaces. CI runs this too, so the README's command stays true.
#   KEEP=1 scripts/demo.sh   leaves the playground up to explore by hand
#                            (target/debug/edgemesh playground exec edge-a2 -- curl ...;
#                             remove it with target/debug/edgemesh playground down)
# A debug build: it compiles in half the time of the optimised one and the playground does not
# need the speed (scripts/bench-*.sh build release for figures).
set -euo pipefail
cd "$(dirname "$0")/.."
[[ $(id -u) -eq 0 ]] || { echo "demo: needs root (it creates network namespaces)" >&2; exit 1; }

cargo build --bin edgemesh
bin=${CARGO_TARGET_DIR:-./target}/debug/edgemesh
keep=${KEEP:-0}
# Whatever happens (a failed check, Ctrl-C), nothing is left behind unless asked to keep it.
[[ $keep == 1 ]] || trap '"$bin" playground down >/dev/null 2>&1 || true' EXIT

"$bin" playground up
status=0
"$bin" playground check || status=$?
if [[ $keep == 1 ]]; then
  echo "demo: the playground is still up; try:"
  echo "  $bin playground exec edge-a2 -- curl -s hostname-lb-svc.edgemesh-test:12345"
  echo "  $bin playground down"
else
  "$bin" playground down
fi
exit "$status"
