#!/usr/bin/env bash
# Memory over a load-and-remove cycle: a release agent (manifests source) in a throwaway network
# namespace starts with one Service, gets N more Services (3 endpoints each) in a second file,
# then loses that file again. Prints its RssAnon (MiB) idle, loaded, just after the removal, and
# 4 s and 10 s later: whether the memory of a burst goes back once the agent is idle.
# Needs root, curl, python3; the Services are scripts/bench/services.py's. EDGEMESH_BIN picks the binary (A/B: run it once per binary).
#   N=5000 scripts/bench-memory-cycle.sh
#   EDGEMESH_BIN=/tmp/edgemesh-old N=5000 scripts/bench-memory-cycle.sh
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-5000}
ns=emcycle
admin=127.0.0.1:19490
if [ -z "${EDGEMESH_BIN:-}" ]; then
  cargo build -q --release --bin edgemesh
  EDGEMESH_BIN=${CARGO_TARGET_DIR:-target}/release/edgemesh
fi
dir=$(mktemp -d)
state=$(mktemp -d)
pid=
cleanup() {
  [ -z "$pid" ] || { kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; }
  ip netns del "$ns" 2>/dev/null || true
  rm -rf "$dir" "$state"
}
trap cleanup EXIT
ip netns add "$ns"
ip -n "$ns" link set lo up

# The Services of scripts/bench/services.py (10.97.0.0 + i, namespace bench), each with 3
# endpoints; the one that stays is renamed and moved off their ClusterIPs.
endpoints=192.0.2.1,198.51.100.1,203.0.113.1
python3 scripts/bench/services.py 1 "$endpoints" |
  sed -e 's/bench-0/keep/g' -e 's/"10\.97\.0\.0"/"10.96.0.10"/' >"$dir/few.yaml"
python3 scripts/bench/services.py "$N" "$endpoints" >"$state/big.yaml"
ip netns exec "$ns" "$EDGEMESH_BIN" agent --manifests "$dir" --admin-addr "$admin" \
  --node-name cycle --state-dir "$state" --log-level warn >"$state/agent.log" 2>&1 &
pid=$!

rss_anon() { awk '/^RssAnon:/ {printf "%.1f", $2 / 1024}' "/proc/$pid/status"; }
services_now() {
  ip netns exec "$ns" curl -s "http://$admin/metrics" | awk '/^edgemesh_services / {print $2}'
}
wait_services() {
  for _ in $(seq 600); do
    [ "$(services_now || true)" = "$1" ] && return 0
    sleep 0.1
  done
  echo "the agent never had $1 services; its log:" >&2
  cat "$state/agent.log" >&2
  exit 1
}

wait_services 1
sleep 4
idle=$(rss_anon)
cp "$state/big.yaml" "$dir/big.yaml"
wait_services $((N + 1))
sleep 4
loaded=$(rss_anon)
rm "$dir/big.yaml"
wait_services 1
removed=$(rss_anon)
sleep 4
later4=$(rss_anon)
sleep 6
later10=$(rss_anon)
echo "| $(basename "$EDGEMESH_BIN") | $N | $idle | $loaded | $removed | $later4 | $later10 |"
