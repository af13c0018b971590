#!/usr/bin/env bash
# Runs the whole test suite: unit, component and real-kernel tests (network namespaces).
# The real-kernel tests need root (CAP_NET_ADMIN) and FAIL, not skip, without it.
set -euo pipefail
cd "$(dirname "$0")/.."
# The binary must exist before the tests that start it as a real process.
cargo build --workspace --bins
exec cargo nextest run --workspace --profile ci "$@"
