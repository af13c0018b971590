#!/usr/bin/env bash
# Edge hub memory with one huge list (issue #18 item 13): a cached client (User-Agent curl) lists
# SIZE_MB of pods through the hub; prints the hub's peak RSS (VmHWM), its RSS afterwards, the time
# of the list and whether the client got every byte. Loopback only, no root needed.
#
#   scripts/bench-hub-biglist.sh                     # this tree's release build, 400 MB
#   SIZE_MB=100 BINS="/path/to/old/edgemesh target/release/edgemesh" scripts/bench-hub-biglist.sh
set -euo pipefail
cd "$(dirname "$0")/.."
SIZE_MB=${SIZE_MB:-400}
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
if [ -z "${BINS:-}" ]; then
  cargo build -q --release -p edgemesh --bin edgemesh
  BINS="$CARGO_TARGET_DIR/release/edgemesh"
fi
WORK=$(mktemp -d)
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

# The upstream: /readyz and one pod list of SIZE_MB built once in memory.
cat > "$WORK/upstream.py" <<'EOF'
import http.server, json, sys
size_mb, port_file = int(sys.argv[1]), sys.argv[2]
pad = "x" * 1000
items = ",".join(json.dumps({"metadata": {"name": f"p{i:07d}", "namespace": "bulk",
                                           "annotations": {"pad": pad}}})
                 for i in range(size_mb * 1000))
body = ('{"kind":"PodList","apiVersion":"v1","metadata":{"resourceVersion":"1"},"items":[' + items + "]}").encode()
class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        data = body if self.path.startswith("/api/v1/pods") else b"ok"
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        view = memoryview(data)
        for i in range(0, len(data), 1 << 20):
            self.wfile.write(view[i:i + (1 << 20)])
    def log_message(self, *args):
        pass
server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
open(port_file, "w").write(str(server.server_address[1]))
server.serve_forever()
EOF
python3 "$WORK/upstream.py" "$SIZE_MB" "$WORK/port" &
PIDS+=($!)
for _ in $(seq 1 600); do [ -s "$WORK/port" ] && break; sleep 0.1; done
UPSTREAM="http://127.0.0.1:$(cat "$WORK/port")"
EXPECTED=$(curl -s -o /dev/null -w '%{size_download}' "$UPSTREAM/api/v1/pods")

echo "list of $EXPECTED bytes ($SIZE_MB MB of ~1 KiB pods); machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "| build | list time | client got | hub peak RSS (VmHWM) | hub RSS after |"
echo "|---|---|---|---|---|"
port=18261
for bin in $BINS; do
  port=$((port + 1))
  cache="$WORK/cache-$port"
  "$bin" hub --server-addr "$UPSTREAM" --secure-addr '' --insecure-addr "127.0.0.1:$port" \
    --hub-device '' --config-map '' --cache-agents curl --cache-dir "$cache" \
    --admin-addr 127.0.0.1:0 --log-level warn 2>"$WORK/hub-$port.log" &
  hub=$!
  PIDS+=("$hub")
  for _ in $(seq 1 100); do curl -s -o /dev/null "http://127.0.0.1:$port/readyz" && break; sleep 0.1; done
  started=$(date +%s.%N)
  got=$(curl -s -A curl -o /dev/null -w '%{size_download}' "http://127.0.0.1:$port/api/v1/pods" || true)
  took=$(echo "$(date +%s.%N) - $started" | bc)
  sleep 3 # the store runs after the answer
  hwm=$(awk '/VmHWM/ {printf "%.0f MiB", $2/1024}' "/proc/$hub/status")
  rss=$(awk '/VmRSS/ {printf "%.0f MiB", $2/1024}' "/proc/$hub/status")
  complete=$([ "$got" = "$EXPECTED" ] && echo "all" || echo "$got bytes")
  printf '| %s | %.2f s | %s | %s | %s |\n' "$bin" "$took" "$complete" "$hwm" "$rss"
  kill "$hub"
done
