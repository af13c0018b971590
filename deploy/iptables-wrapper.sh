#!/bin/sh
# iptables-wrapper: run the iptables flavour (legacy or nft) that the host already uses.
#
# The image carries both iptables-legacy and iptables-nft; rules written with the wrong one land
# in tables the host's kube-proxy and kubelet never read. This script is installed (with
# update-alternatives, see deploy/Dockerfile) in place of iptables, iptables-save,
# iptables-restore and their ip6tables twins. On its first run it counts the rules each flavour
# sees (`iptables-legacy-save` against `iptables-nft-save`, IPv4 and IPv6): the host's
# kubelet/kube-proxy have written theirs with one of them. The flavour with more rules wins; a
# tie (a bare host) goes to legacy, as in kube-proxy's wrapper. It then points the alternatives
# at that flavour, so later calls go straight to it, and runs the command it was called as.
#
#   EDGEMESH_IPTABLES_MODE=legacy|nft   skip the detection
#   iptables-wrapper --detect           print the mode it would pick and change nothing
set -eu

count_rules() {
    # Rules are the lines starting with '-' (`-A CHAIN ...`). iptables-nft-save of some old
    # versions could hang: bound it.
    (timeout 5 "$1" 2>/dev/null || true; timeout 5 "$2" 2>/dev/null || true) | grep -c '^-' || true
}

detect_mode() {
    case "${EDGEMESH_IPTABLES_MODE:-}" in
        legacy | nft)
            echo "$EDGEMESH_IPTABLES_MODE"
            return
            ;;
        "") ;;
        *)
            echo "iptables-wrapper: EDGEMESH_IPTABLES_MODE must be legacy or nft, not '$EDGEMESH_IPTABLES_MODE'" >&2
            exit 1
            ;;
    esac
    legacy=$(count_rules iptables-legacy-save ip6tables-legacy-save)
    # Plenty of legacy rules: the host is on legacy; nft is not even asked.
    if [ "$legacy" -ge 10 ]; then
        echo legacy
        return
    fi
    nft=$(count_rules iptables-nft-save ip6tables-nft-save)
    if [ "$nft" -gt "$legacy" ]; then
        echo nft
    else
        echo legacy
    fi
}

if [ "${1:-}" = "--detect" ]; then
    detect_mode
    exit 0
fi

mode=$(detect_mode)

# Later calls skip this script. Failing to switch (a read-only /etc) only costs a detection
# per call, so it is not fatal.
for family in iptables ip6tables; do
    target=$(command -v "${family}-${mode}" || true)
    if [ -n "$target" ]; then
        update-alternatives --set "$family" "$target" >/dev/null 2>&1 || true
    fi
done

# Run the flavour's own binary for the name this script was called by.
name=$(basename "$0")
case "$name" in
    iptables | ip6tables) real="${name}-${mode}" ;;
    iptables-save | ip6tables-save) real="${name%-save}-${mode}-save" ;;
    iptables-restore | ip6tables-restore) real="${name%-restore}-${mode}-restore" ;;
    *)
        echo "iptables-wrapper: called as '$name'; install it as iptables, iptables-save or iptables-restore (or the ip6tables ones)" >&2
        exit 1
        ;;
esac
exec "$real" "$@"
