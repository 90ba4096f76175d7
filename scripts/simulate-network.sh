#!/usr/bin/env bash
# The network simulation: N real genmint nodes in one process over in-memory links, joining
# through a few bootstrap nodes. Prints advert reach (50 % / 99 % of nodes), bytes per node per
# second, the share of jobs placed on a capable peer with its latency, and memory per node.
#
#   scripts/simulate-network.sh [--nodes 100] [--bootstrap 3] [--latency-ms 0] [--loss 0 (%)]
#                               [--warmup 15 (s)] [--secs 20] [--jobs 100]
#                               [--advert-interval 10 (s)]
#   SIM_PROFILE=dev scripts/simulate-network.sh    # reuse the debug build (quicker to build)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PROFILE="${SIM_PROFILE:-release}"
case "$PROFILE" in
    release) profile_flag=(--release) ;;
    # The dev profile already optimises the signature and transport-encryption crates.
    dev) profile_flag=() ;;
    *) echo "SIM_PROFILE must be release or dev, not $PROFILE" >&2; exit 2 ;;
esac

exec cargo run --locked "${profile_flag[@]}" -p genmint-p2p --example simulate -- "$@"
