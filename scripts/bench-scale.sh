#!/usr/bin/env bash
# Scale figures (issue #16 item 3): a release agent (nftables backend, DNS off) in a throwaway
# network namespace, loaded with N Services of 3 endpoints each from the apiserver test double
# (paged lists) and, for RSS, from one manifests file. Per N: time to ready, full nftables apply,
# VmRSS/VmHWM/RssAnon, one endpoint change from the API write to the kernel's map.
# Needs root. Prints markdown tables; with PLOT=path also draws RSS and apply time vs N (gnuplot).
#   SIZES="1000 10000 50000 100000" MANIFEST_SIZES="10000" PLOT=docs/scale.png scripts/bench-scale.sh
# LOG_DIR=dir keeps the agent's logs.
# SMAPS_DIR=dir keeps the agent's /proc/PID/smaps of each run there (which mappings the RSS is).
set -euo pipefail
cd "$(dirname "$0")/.."
SIZES=${SIZES:-1000 10000 50000 100000}
MANIFEST_SIZES=${MANIFEST_SIZES-10000}
echo "machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
cargo build -q --release --bin edgemesh
cargo build -q --release -p edgemesh --example scale_bench
target=${CARGO_TARGET_DIR:-target}
case "$target" in /*) ;; *) target="$PWD/$target" ;; esac
bench="$target/release/examples/scale_bench"
export EDGEMESH_BIN=${EDGEMESH_BIN:-$target/release/edgemesh}
out=$(mktemp)
trap 'rm -f "$out"' EXIT
# shellcheck disable=SC2086 # word splitting of the size lists is intended
"$bench" api $SIZES | tee "$out"
if [ -n "$MANIFEST_SIZES" ]; then
  # shellcheck disable=SC2086
  "$bench" manifests $MANIFEST_SIZES
fi
[ -n "${PLOT:-}" ] || exit 0
command -v gnuplot >/dev/null || apt-get install -y -q gnuplot-nox >/dev/null
# Columns of the api rows: services, full apply (ms), VmRSS (MiB), VmHWM (MiB).
data=$(mktemp)
awk -F'|' '$2 ~ /api/ {gsub(/[^0-9.]/, "", $3); gsub(/[^0-9.]/, "", $7); gsub(/[^0-9.]/, "", $8); gsub(/[^0-9.]/, "", $9); print $3, $7 / 1000, $8, $9}' "$out" >"$data"
gnuplot <<GP
set terminal pngcairo size 800,450 font ",10"
set output "$PLOT"
set title "edgemesh agent at scale (nftables, 3 endpoints per service)"
set xlabel "services"
set ylabel "MiB"
set y2label "full nftables apply, s"
set y2tics
set ytics nomirror
set key left top
set grid
plot "$data" using 1:2 axes x1y2 with linespoints title "full apply (s)", \
     "$data" using 1:3 with linespoints title "VmRSS (MiB)", \
     "$data" using 1:4 with linespoints title "VmHWM (MiB)"
GP
rm -f "$data"
echo "plot: $PLOT"
