#!/usr/bin/env bash
# Cross-compiles the edgemesh binary for the ARM platforms EdgeMesh ships (linux/arm64 and
# linux/arm/v7), with rustup targets and Debian's cross linkers (.cargo/config.toml).
#
#   scripts/cross-build.sh            the shipped binaries (Cargo.toml's `dist` profile: release,
#                                     whole-program optimisation, stripped), their sizes printed
#   scripts/cross-build.sh --check    `cargo check --profile dist` per target (what CI runs)
#   TARGETS="aarch64-unknown-linux-gnu" scripts/cross-build.sh   one target only
#
# scripts/setup.sh installs the toolchains. Honours CARGO_TARGET_DIR.
set -euo pipefail
cd "$(dirname "$0")/.."

mode=build
case "${1:-}" in
  --check) mode=check ;;
  "") ;;
  *) echo "usage: $0 [--check]" >&2; exit 2 ;;
esac

read -r -a targets <<<"${TARGETS:-aarch64-unknown-linux-gnu armv7-unknown-linux-gnueabihf}"
target_dir=${CARGO_TARGET_DIR:-target}
export CARGO_INCREMENTAL=0

for t in "${targets[@]}"; do
  rustup target list --installed | grep -qx "$t" || {
    echo "cross-build: rust target $t is not installed (scripts/setup.sh adds it)" >&2
    exit 1
  }
done

for t in "${targets[@]}"; do
  if [[ $mode == check ]]; then
    echo "cross-build: cargo check --profile dist --target $t"
    cargo check --profile dist --locked --target "$t" -p edgemesh
  else
    echo "cross-build: cargo build --profile dist --target $t"
    cargo build --profile dist --locked --target "$t" -p edgemesh --bin edgemesh
  fi
done

if [[ $mode == build ]]; then
  for t in "${targets[@]}"; do
    bin="$target_dir/$t/dist/edgemesh"
    printf '%-32s %10d bytes  %s\n' "$t" "$(stat -c %s "$bin")" "$(file -b "$bin" 2>/dev/null | cut -d, -f1-2)"
  done
fi
