#!/usr/bin/env bash
# The network simulation: N real genmint nodes in one process over in-memory links, joining
# through a few bootstrap nodes. Prints advert reach (50 % / 99 % of nodes), bytes per node per
# second, the share of jobs placed on a capable peer with its latency, and memory per node.
#
#   scripts/simulate-network.sh [--nodes 100] [--bootstrap 3] [--latency-ms 0] [--loss 0 (%)]
#                               [--warmup 15 (s)] [--secs 20] [--jobs 100]
#                               [--advert-interval 10 (s)] [--churn 0 (% a minute)]
#                               [--advert-rate 10 (adverts a second, network-wide)]
#                               [--dilation 1 (times slower than real time)]
#                               [--join-rate 100 (nodes joining a second at first; 0: at once)]
#   With --dilation K every timer runs K times slower and the figures are in simulated time: the
#   way to run more nodes than the machine's cores keep up with in real time (each node needs
#   about 1.4 % of a core at 100 nodes).
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
