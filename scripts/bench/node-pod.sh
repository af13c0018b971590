# Sourced by the bench scripts that measure one process on a "node" against a "pod":
# the binary to measure, and two throwaway network namespaces joined by a veth
# (node 192.0.2.1/24, pod 192.0.2.11/24), removed on exit with every process the script started.
#
#   PREFIX=emdp; source "$ROOT/scripts/bench/node-pod.sh"
#   ... PIDS+=($!) for helpers; MEASURED=$! for the process under test ...
#
# Sets BIN (EDGEMESH_BIN, or a release build of this checkout), WORK (a temporary directory),
# NODE and POD (the namespaces), and in_node/in_pod (run a command inside one).

# EDGEMESH_BIN measures another build (e.g. the previous commit's, for a before/after table).
if [ -n "${EDGEMESH_BIN:-}" ]; then
  BIN=$EDGEMESH_BIN
else
  cargo build -q --release -p edgemesh --bin edgemesh
  BIN=$CARGO_TARGET_DIR/release/edgemesh
fi

WORK=$(mktemp -d)
NODE=$PREFIX-node-$$
POD=$PREFIX-pod-$$
PIDS=()
MEASURED=""
cleanup() {
  for pid in "${PIDS[@]}" $MEASURED; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  ip netns del "$NODE" 2>/dev/null || true
  ip netns del "$POD" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
in_node() { ip netns exec "$NODE" "$@"; }
in_pod() { ip netns exec "$POD" "$@"; }

ip netns add "$NODE"
ip netns add "$POD"
ip -n "$NODE" link add eth0 type veth peer name eth0 netns "$POD"
ip -n "$NODE" addr add 192.0.2.1/24 dev eth0
ip -n "$POD" addr add 192.0.2.11/24 dev eth0
for ns in "$NODE" "$POD"; do ip -n "$ns" link set lo up; ip -n "$ns" link set eth0 up; done
