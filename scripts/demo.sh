#!/usr/bin/env bash
# Builds edgemesh, runs the agent offline on examples/manifests (no cluster needed) inside a
# network namespace of its own (the agent programs netfilter; the host's rules are never
# touched), waits until it is ready and shows what it discovered and the rules it installed.
# Needs root for the namespace. CI runs this too, so the README's command stays true.
set -euo pipefail
cd "$(dirname "$0")/.."
[[ $(id -u) -eq 0 ]] || { echo "demo: needs root (it creates a network namespace)" >&2; exit 1; }

cargo build --release --bin edgemesh
ns="edgemesh-demo-$$"
log=$(mktemp)
ip netns add "$ns"
ip -n "$ns" link set lo up
ip netns exec "$ns" ./target/release/edgemesh agent --manifests examples/manifests \
  --node-name demo-node --admin-addr 127.0.0.1:0 >"$log" 2>&1 &
agent=$!
trap 'kill "$agent" 2>/dev/null || true; wait "$agent" 2>/dev/null || true; ip netns del "$ns"; rm -f "$log"' EXIT
in_ns() { ip netns exec "$ns" "$@"; }

addr=""
for _ in $(seq 1 100); do   # up to 10 s
  addr=$(grep -o 'admin endpoint listening on [0-9.:]*' "$log" | awk '{print $NF}' || true)
  [[ -n $addr ]] && in_ns curl -fsS "http://$addr/readyz" >/dev/null 2>&1 && break
  sleep 0.1
done
[[ -n $addr ]] || { echo "demo: the agent did not start:" >&2; cat "$log" >&2; exit 1; }
in_ns curl -fsS "http://$addr/readyz"
echo "--- services discovered (from http://$addr/debug/snapshot):"
in_ns curl -fsS "http://$addr/debug/snapshot" | python3 -c '
import json, sys
snap = json.load(sys.stdin)
print("snapshot version", snap["version"])
for name, svc in snap["services"].items():
    ips = ",".join(svc.get("clusterIps", [])) or "-"
    for port in svc["ports"]:
        backends = " ".join(b["addr"] for b in port["backends"]) or "(none)"
        frontend = "%s:%s/%s" % (ips, port["port"], port["protocol"])
        print("%-34s %-24s %-34s lb=%-11s -> %s" % (name, frontend, json.dumps(svc["proxy"]), json.dumps(svc["lbPolicy"]), backends))
'
echo "--- interception rules (nft list table inet edgemesh):"
in_ns nft list table inet edgemesh
echo "--- agent log:"
cat "$log"
