#!/usr/bin/env bash
# Checks what a user deploys: the Helm chart, the plain manifests, the image recipe.
#   - hadolint on deploy/Dockerfile;
#   - `helm lint --strict` and `helm template` of deploy/helm/edgemesh with the default values,
#     EdgeMesh's own values files (ci/edgemesh-*.yaml, EdgeMesh's keys) and ci/values-all-on.yaml;
#   - every rendered object, deploy/agent.yaml and deploy/gateway.yaml, validated against the
#     Kubernetes OpenAPI schema, every agent ConfigMap started through
#     `edgemesh agent --check-config` and every gateway ConfigMap through
#     `edgemesh gateway --check-config` (scripts/check-deploy.py);
#   - the gateway (gateway.enabled, ci/values-gateway.yaml) keeps EdgeMesh's gateway object names;
#   - every hub container's flags pass `edgemesh hub --check-config` (check-deploy.py stands in
#     for the pod's files);
#   - the hub's certificate from the certificates API (ci/values-hub-bootstrap.yaml) renders the
#     `edgemesh hub bootstrap` initContainer, renewal and the CSR RBAC;
#   - values that must be refused are refused (the hub without an apiserver address, two sources
#     of the serving certificate);
#   - deploy/iptables-wrapper.sh picks the flavour that holds the rules, in a network namespace
#     of its own (needs root; fails, not skips, without it).
# scripts/setup.sh installs helm, kubernetes-validate and hadolint.
set -euo pipefail
cd "$(dirname "$0")/.."

chart=deploy/helm/edgemesh
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
fail() { echo "check-deploy: FAIL: $*" >&2; exit 1; }

echo "check-deploy: hadolint deploy/Dockerfile"
hadolint deploy/Dockerfile

cargo build --quiet -p edgemesh --bin edgemesh
bin="${CARGO_TARGET_DIR:-target}/debug/edgemesh"
[[ -x $bin ]] || fail "no edgemesh binary at $bin"

render() { # name, helm args...
  local name=$1; shift
  echo "check-deploy: helm lint + template ($name)"
  helm lint --strict --quiet "$chart" "$@" >"$out/$name.lint" 2>&1 || { cat "$out/$name.lint" >&2; fail "helm lint ($name)"; }
  helm template edgemesh "$chart" --namespace kubeedge "$@" >"$out/$name.yaml"
}

echo "check-deploy: the checker catches broken objects"
if scripts/check-deploy.py --edgemesh "$bin" scripts/testdata/check-deploy-broken.yaml >"$out/broken.txt" 2>&1; then
  cat "$out/broken.txt" >&2; fail "check-deploy.py passed scripts/testdata/check-deploy-broken.yaml"
fi
for want in "listenPort: invalid value '0'" "'bad agent' is not a User-Agent" "'hostNetwrk' was unexpected" \
  "has no flag --no-such-flag" "includeIP: invalid value 'not-an-ip'" \
  "the HTTPS listener needs --cert-file and --key-file"; do
  grep -qF "$want" "$out/broken.txt" || { cat "$out/broken.txt" >&2; fail "check-deploy.py did not report: $want"; }
done

render default
scripts/check-deploy.py --edgemesh "$bin" "$out/default.yaml"
grep -q 'kubeedge: edgemesh-hub' "$out/default.yaml" && fail "the hub is rendered though hub.enabled is false by default"
grep -q 'kubeedge: edgemesh-gateway' "$out/default.yaml" && fail "the gateway is rendered though gateway.enabled is false by default"

for values in "$chart"/ci/edgemesh-*.yaml; do
  name=$(basename "$values" .yaml)
  render "$name" -f "$values"
  scripts/check-deploy.py --edgemesh "$bin" --values "$values" --edgemesh-compat "$out/$name.yaml"
done

render all-on -f "$chart/ci/values-all-on.yaml"
scripts/check-deploy.py --edgemesh "$bin" --values "$chart/ci/values-all-on.yaml" "$out/all-on.yaml"
for kind in "DaemonSet" "ConfigMap"; do
  n=$(grep -c "^kind: $kind\$" "$out/all-on.yaml" || true)
  [[ $n -ge 2 ]] || fail "values-all-on renders $n ${kind}s, expected the agent's and the hub's"
done

render hub-bootstrap -f "$chart/ci/values-hub-bootstrap.yaml"
scripts/check-deploy.py --edgemesh "$bin" --values "$chart/ci/values-hub-bootstrap.yaml" "$out/hub-bootstrap.yaml"
grep -q 'command: \["/usr/local/bin/edgemesh", "hub", "bootstrap"\]' "$out/hub-bootstrap.yaml" \
  || fail "hub.bootstrap.enabled renders no hub-bootstrap initContainer"
grep -q -- '- --rotate-server-certificate' "$out/hub-bootstrap.yaml" || fail "hub.bootstrap.enabled: the hub does not renew"
grep -q 'resources: \["certificatesigningrequests"\]' "$out/hub-bootstrap.yaml" \
  || fail "hub.bootstrap.enabled renders no RBAC for certificatesigningrequests"
# The durations the chart passes parse (the flag check above only knows the flag names).
# (Without --cert-file it stops right after parsing, naming that flag.)
said=$("$bin" hub bootstrap --server-addr http://127.0.0.1:1 --csr-timeout 30m --cert-lifetime 720h 2>&1 || true)
grep -q -- "--cert-file and --key-file are required" <<<"$said" || fail "edgemesh hub bootstrap refuses the chart's durations: $said"

render gateway -f "$chart/ci/values-gateway.yaml"
scripts/check-deploy.py --edgemesh "$bin" --values "$chart/ci/values-gateway.yaml" --edgemesh-compat "$out/gateway.yaml"
grep -q '^kind: Deployment$' "$out/gateway.yaml" || fail "ci/values-gateway.yaml renders no gateway Deployment"

echo "check-deploy: refused values"
if helm template edgemesh "$chart" --set hub.enabled=true >"$out/refused.txt" 2>&1; then
  fail "hub.enabled without hub.serverAddr rendered"
fi
grep -q "hub.serverAddr" "$out/refused.txt" || { cat "$out/refused.txt" >&2; fail "the refusal does not name hub.serverAddr"; }
if helm template edgemesh "$chart" -f "$chart/ci/values-hub-bootstrap.yaml" --set hub.tlsSecret=x >"$out/refused.txt" 2>&1; then
  fail "hub.bootstrap.enabled with hub.tlsSecret rendered"
fi
grep -q "choose one" "$out/refused.txt" || { cat "$out/refused.txt" >&2; fail "the refusal does not name the clash"; }

echo "check-deploy: plain manifests (deploy/agent.yaml, deploy/gateway.yaml)"
scripts/check-deploy.py --edgemesh "$bin" deploy/agent.yaml
scripts/check-deploy.py --edgemesh "$bin" --gateway-compat deploy/gateway.yaml

echo "check-deploy: iptables-wrapper in a network namespace"
[[ $(id -u) -eq 0 ]] || fail "the iptables-wrapper check needs root (a network namespace)"
wrapper=$PWD/deploy/iptables-wrapper.sh
# shellcheck disable=SC2016 # the script runs in the namespace's shell, which expands it
unshare --net sh -eu -c '
  w=$1
  [ "$("$w" --detect)" = legacy ] || { echo "empty tables: not legacy" >&2; exit 1; }
  for p in $(seq 1001 1012); do iptables-nft -A INPUT -p tcp --dport "$p" -j ACCEPT; done
  [ "$("$w" --detect)" = nft ] || { echo "12 nft rules: not nft" >&2; exit 1; }
  for p in $(seq 2001 2012); do iptables-legacy -A INPUT -p tcp --dport "$p" -j ACCEPT; done
  [ "$("$w" --detect)" = legacy ] || { echo "12 legacy rules: not legacy" >&2; exit 1; }
  [ "$(EDGEMESH_IPTABLES_MODE=nft "$w" --detect)" = nft ] || { echo "override ignored" >&2; exit 1; }
  iptables-legacy -F INPUT
' sh "$wrapper" || fail "iptables-wrapper picked the wrong flavour"
# Called as iptables-save, it runs the chosen flavour's own binary and points the alternatives
# there (a stand-in update-alternatives records it: the host's alternatives are not touched).
fake=$out/fake-bin
mkdir -p "$fake"
for name in iptables iptables-save iptables-restore ip6tables-save; do ln -s "$wrapper" "$fake/$name"; done
printf '#!/bin/sh\necho "$@" >>"%s/alternatives.log"\n' "$fake" >"$fake/update-alternatives"
chmod +x "$fake/update-alternatives"
# shellcheck disable=SC2016
unshare --net sh -eu -c '
  for p in $(seq 1001 1012); do iptables-nft -A INPUT -p tcp --dport "$p" -j ACCEPT; done
  n=$(PATH="$1:$PATH" "$1/iptables-save" | grep -c "^-A INPUT")
  [ "$n" = 12 ] || { echo "iptables-save through the wrapper saw $n rules, not 12" >&2; exit 1; }
' sh "$fake" || fail "iptables-wrapper did not run iptables-nft-save"
grep -qx -- "--set iptables $(command -v iptables-nft)" "$fake/alternatives.log" \
  || fail "iptables-wrapper did not point the iptables alternative at iptables-nft"
grep -qx -- "--set ip6tables $(command -v ip6tables-nft)" "$fake/alternatives.log" \
  || fail "iptables-wrapper did not point the ip6tables alternative at ip6tables-nft"

echo "check-deploy: ok"
