#!/usr/bin/env bash
# Builds edgemesh, runs the agent offline on examples/manifests (no cluster needed), waits until
# it is ready and shows what it discovered. CI runs this too, so the README's command stays true.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --release --bin edgemesh
log=$(mktemp)
./target/release/edgemesh agent --manifests examples/manifests --admin-addr 127.0.0.1:0 >"$log" 2>&1 &
agent=$!
trap 'kill "$agent" 2>/dev/null || true; rm -f "$log"' EXIT

addr=""
for _ in $(seq 1 100); do   # up to 10 s
  addr=$(grep -o 'admin endpoint listening on [0-9.:]*' "$log" | awk '{print $NF}' || true)
  [[ -n $addr ]] && curl -fsS "http://$addr/readyz" >/dev/null 2>&1 && break
  sleep 0.1
done
[[ -n $addr ]] || { echo "demo: the agent did not start:" >&2; cat "$log" >&2; exit 1; }
curl -fsS "http://$addr/readyz"
echo "--- services discovered (from http://$addr/debug/snapshot):"
curl -fsS "http://$addr/debug/snapshot" | python3 -c '
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
echo "--- agent log:"
cat "$log"
