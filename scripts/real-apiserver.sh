#!/usr/bin/env bash
# A real etcd + kube-apiserver in a fresh network namespace, for trying edgemesh against the
# genuine article (watch semantics, RBAC errors, restarts) rather than the testkit's double.
#
# It never downloads anything: it runs binaries you already have.
#
#   KUBE_APISERVER=/path/to/kube-apiserver [ETCD=/usr/bin/etcd] scripts/real-apiserver.sh [DIR]
#
# DIR (default: a new /tmp/real-apiserver.XXXXXX) receives the CA, serving certificate,
# service-account keys, token file, kubeconfigs, logs and `env` (sourceable: NETNS, SERVER, CA,
# ADMIN_TOKEN, LIMITED_TOKEN, ADMIN_KUBECONFIG, LIMITED_KUBECONFIG, the pid files).
# The namespace is `em-realapi-<pid>-0` (the testkit's cleanup_stale("em-") removes it if this
# script is SIGKILLed). Everything runs inside it: etcd and the apiserver listen on 127.0.0.1
# (the apiserver on all addresses of the namespace: 127.0.0.1 and 192.0.2.10 on its lo, which it
# advertises because Endpoints may not hold loopback addresses). Run clients inside it:
# `ip netns exec "$NETNS" kubectl ...`.
#
# Signals: Ctrl-C / SIGTERM stop everything and delete the namespace and DIR (KEEP=1 keeps DIR).
#          SIGUSR1 (re)starts kube-apiserver (a graceful SIGTERM restart when it runs, as in an
#          upgrade); SIGUSR2 kills it (SIGKILL), leaving etcd up: an apiserver that dies.
# Users (static token file, --authorization-mode=RBAC):
#   admin   (group system:masters): everything.
#   limited (only system:authenticated): no RBAC binding, so it cannot list Services.
set -euo pipefail

KUBE_APISERVER=${KUBE_APISERVER:?set KUBE_APISERVER to a kube-apiserver binary}
ETCD=${ETCD:-$(command -v etcd || true)}
[[ -x "$KUBE_APISERVER" ]] || { echo "KUBE_APISERVER=$KUBE_APISERVER is not executable" >&2; exit 2; }
[[ -x "$ETCD" ]] || { echo "ETCD=${ETCD:-<none>} is not executable (apt-get install etcd-server)" >&2; exit 2; }
[[ $EUID -eq 0 ]] || { echo "needs root (ip netns)" >&2; exit 2; }
for tool in openssl curl ip; do
    command -v "$tool" >/dev/null || { echo "missing $tool" >&2; exit 2; }
done

DIR=${1:-$(mktemp -d /tmp/real-apiserver.XXXXXX)}
mkdir -p "$DIR"
NETNS=${NETNS:-em-realapi-$$-0}
ADVERTISE=192.0.2.10
PORT=${PORT:-6443}
SERVER=https://127.0.0.1:$PORT
ETCD_PID="" APISERVER_PID=""

log() { echo "[real-apiserver] $*" >&2; }

cleanup() {
    trap - EXIT INT TERM USR1 USR2
    log "stopping"
    # Only the processes this script started, by pid.
    # kube-apiserver's graceful stop holds open watches for up to 60 s: give both 10 s.
    stop_pid "$APISERVER_PID"
    stop_pid "$ETCD_PID"
    # Whatever else still runs in the namespace (an agent or hub started there by hand) would
    # outlive its deletion in a detached namespace: end those too, by pid.
    local left
    left=$(ip netns pids "$NETNS" 2>/dev/null || true)
    if [[ -n "$left" ]]; then
        log "ending what still runs in $NETNS: $(echo $left)"
        # shellcheck disable=SC2086
        kill $left 2>/dev/null || true
        sleep 1
        left=$(ip netns pids "$NETNS" 2>/dev/null || true)
        # shellcheck disable=SC2086
        [[ -z "$left" ]] || kill -9 $left 2>/dev/null || true
    fi
    ip netns del "$NETNS" 2>/dev/null || true
    if [[ "${KEEP:-0}" == 1 ]]; then log "kept $DIR"; else rm -rf "$DIR"; fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

stop_pid() { # pid: SIGTERM, then SIGKILL after 10 s
    [[ -n "$1" ]] || return 0
    kill "$1" 2>/dev/null || return 0
    local i
    for i in $(seq 50); do
        kill -0 "$1" 2>/dev/null || break
        sleep 0.2
    done
    kill -9 "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
}

in_ns() { ip netns exec "$NETNS" "$@"; }

make_certs() {
    local d=$DIR/pki
    mkdir -p "$d"
    openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=real-apiserver-ca" \
        -keyout "$d/ca.key" -out "$d/ca.crt" 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -subj "/CN=kube-apiserver" \
        -keyout "$d/apiserver.key" -out "$d/apiserver.csr" 2>/dev/null
    # 10.96.0.1: the `kubernetes` Service's ClusterIP, so in-cluster clients can verify too.
    printf 'subjectAltName=IP:127.0.0.1,IP:%s,IP:10.96.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local\nextendedKeyUsage=serverAuth\n' \
        "$ADVERTISE" >"$d/apiserver.ext"
    openssl x509 -req -in "$d/apiserver.csr" -CA "$d/ca.crt" -CAkey "$d/ca.key" -CAcreateserial \
        -days 2 -extfile "$d/apiserver.ext" -out "$d/apiserver.crt" 2>/dev/null
    openssl genrsa -out "$d/sa.key" 2048 2>/dev/null
    openssl rsa -in "$d/sa.key" -pubout -out "$d/sa.pub" 2>/dev/null
}

make_tokens() {
    ADMIN_TOKEN=$(openssl rand -hex 16)
    LIMITED_TOKEN=$(openssl rand -hex 16)
    # token,user,uid,"group1,group2"
    {
        echo "$ADMIN_TOKEN,admin,uid-admin,\"system:masters\""
        echo "$LIMITED_TOKEN,limited,uid-limited"
    } >"$DIR/tokens.csv"
    printf '%s' "$ADMIN_TOKEN" >"$DIR/admin.token"
    printf '%s' "$LIMITED_TOKEN" >"$DIR/limited.token"
    chmod 600 "$DIR/tokens.csv" "$DIR/admin.token" "$DIR/limited.token"
}

write_kubeconfig() { # name token
    cat >"$DIR/$1.kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: real
  cluster:
    server: $SERVER
    certificate-authority: $DIR/pki/ca.crt
users:
- name: $1
  user:
    token: $2
contexts:
- name: $1@real
  context: {cluster: real, user: $1}
current-context: $1@real
EOF
}

start_etcd() {
    # Not through in_ns: `ip netns exec` must be the background job itself (it execs into the
    # program), so that $! is the program's pid, not a subshell's.
    ip netns exec "$NETNS" "$ETCD" --name real --data-dir "$DIR/etcd" \
        --listen-client-urls http://127.0.0.1:2379 --advertise-client-urls http://127.0.0.1:2379 \
        --listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
        --initial-cluster real=http://127.0.0.1:2380 --listen-metrics-urls http://127.0.0.1:2381 \
        >>"$DIR/etcd.log" 2>&1 &
    ETCD_PID=$!
    echo "$ETCD_PID" >"$DIR/etcd.pid"
    wait_for "etcd" "$ETCD_PID" 30 in_ns curl -sf http://127.0.0.1:2379/health
}

start_apiserver() {
    local d=$DIR/pki
    ip netns exec "$NETNS" "$KUBE_APISERVER" \
        --etcd-servers=http://127.0.0.1:2379 \
        --bind-address=0.0.0.0 --secure-port="$PORT" --advertise-address="$ADVERTISE" \
        --tls-cert-file="$d/apiserver.crt" --tls-private-key-file="$d/apiserver.key" \
        --client-ca-file="$d/ca.crt" --cert-dir="$d" \
        --service-account-key-file="$d/sa.pub" --service-account-signing-key-file="$d/sa.key" \
        --service-account-issuer=https://kubernetes.default.svc.cluster.local \
        --token-auth-file="$DIR/tokens.csv" \
        --authorization-mode=RBAC \
        --service-cluster-ip-range=10.96.0.0/12 \
        ${APISERVER_EXTRA_ARGS:-} \
        >>"$DIR/kube-apiserver.log" 2>&1 &
    APISERVER_PID=$!
    echo "$APISERVER_PID" >"$DIR/kube-apiserver.pid"
    wait_for "kube-apiserver" "$APISERVER_PID" 90 in_ns curl -sf --cacert "$d/ca.crt" \
        -H "Authorization: Bearer $ADMIN_TOKEN" "$SERVER/readyz"
}

stop_apiserver() { # signal: TERM for a graceful stop, KILL for a death
    [[ -n "$APISERVER_PID" ]] || return 0
    kill -"$1" "$APISERVER_PID" 2>/dev/null || true
    wait "$APISERVER_PID" 2>/dev/null || true
    APISERVER_PID=""
    rm -f "$DIR/kube-apiserver.pid"
    log "kube-apiserver stopped by SIG$1 ($(date -u +%T.%N | cut -c1-12))"
}

wait_for() { # what pid seconds cmd...
    local what=$1 pid=$2 seconds=$3
    shift 3
    local deadline=$((SECONDS + seconds))
    until "$@" >/dev/null 2>&1; do
        if ((SECONDS >= deadline)) || ! kill -0 "$pid" 2>/dev/null; then
            log "$what not ready (exited, or not within ${seconds}s); last log lines:"
            tail -n 20 "$DIR/$what.log" >&2 || true
            exit 1
        fi
        sleep 0.2
    done
    log "$what ready ($(date -u +%T.%N | cut -c1-12))"
}

ip netns add "$NETNS"
in_ns ip link set lo up
in_ns ip addr add "$ADVERTISE/32" dev lo
make_certs
make_tokens
write_kubeconfig admin "$ADMIN_TOKEN"
write_kubeconfig limited "$LIMITED_TOKEN"
start_etcd
start_apiserver

cat >"$DIR/env" <<EOF
NETNS=$NETNS
SERVER=$SERVER
CA=$DIR/pki/ca.crt
ADMIN_TOKEN=$ADMIN_TOKEN
LIMITED_TOKEN=$LIMITED_TOKEN
ADMIN_TOKEN_FILE=$DIR/admin.token
LIMITED_TOKEN_FILE=$DIR/limited.token
ADMIN_KUBECONFIG=$DIR/admin.kubeconfig
LIMITED_KUBECONFIG=$DIR/limited.kubeconfig
APISERVER_PID_FILE=$DIR/kube-apiserver.pid
ETCD_PID_FILE=$DIR/etcd.pid
CONTROL_PID=$$
EOF
log "namespace:  $NETNS"
log "kubeconfig: $DIR/admin.kubeconfig (limited user: $DIR/limited.kubeconfig)"
log "env file:   $DIR/env"
log "try:        ip netns exec $NETNS kubectl --kubeconfig $DIR/admin.kubeconfig get ns"
log "restart the apiserver: kill -USR1 $$   kill it: kill -USR2 $$   stop all: kill $$"
echo "$DIR/admin.kubeconfig"

trap 'stop_apiserver TERM; start_apiserver' USR1
trap 'stop_apiserver KILL' USR2
# `wait` returns early on each trapped signal; loop until INT/TERM exit via their traps.
while true; do
    sleep 1 &
    wait $! 2>/dev/null || true
done
