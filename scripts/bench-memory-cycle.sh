#!/usr/bin/env bash
# Memory over a load-and-remove cycle: a release agent (manifests source) in a throwaway network
# namespace starts with one Service, gets N more Services (3 endpoints each) in a second file,
# then loses that file again. Prints its RssAnon (MiB) idle, loaded, just after the removal, and
# 4 s and 10 s later: whether the memory of a burst goes back once the agent is idle.
# Needs root, curl, python3. EDGEMESH_BIN picks the binary (A/B: run it once per binary).
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

# services FIRST COUNT PREFIX: COUNT Services from index FIRST, each with an EndpointSlice of 3
# endpoints (ClusterIPs in 10.100.0.0/14, inside the namespace only).
services() {
  python3 - "$@" <<'EOF'
import sys
first, count, prefix = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
docs = []
for i in range(first, first + count):
    hi, lo = divmod(i, 250)
    ns, name = f"ns{i % 50}", f"{prefix}{i}"
    docs.append(f"""apiVersion: v1
kind: Service
metadata: {{name: {name}, namespace: {ns}}}
spec:
  clusterIP: 10.{100 + hi // 250}.{hi % 250}.{lo + 1}
  ports: [{{name: http, port: 80, targetPort: 8080}}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {{name: {name}-x, namespace: {ns}, labels: {{kubernetes.io/service-name: {name}}}}}
addressType: IPv4
ports: [{{name: http, port: 8080}}]
endpoints: [{{addresses: ["192.0.2.{1 + i % 200}"]}}, {{addresses: ["198.51.100.{1 + i % 200}"]}}, {{addresses: ["203.0.113.{1 + i % 200}"]}}]
""")
print("---\n".join(docs))
EOF
}

services 0 1 keep >"$dir/few.yaml"
services 1 "$N" s >"$state/big.yaml"
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
