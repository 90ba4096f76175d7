#!/usr/bin/env bash
# The network benchmark: N in-process nodes on loopback (default 20), each joining through 1-3
# earlier nodes. Prints advert propagation to all nodes (min/p50/max), job dispatch round trips
# (p50/p99) and handle commands per second. Targets: advert to all 20 <= 2 s, dispatch p50 <= 5 ms.
#
#   scripts/bench-p2p.sh [--nodes 20] [--rounds 10] [--requests 1000] [--seconds 2]
#   BENCH_PROFILE=dev scripts/bench-p2p.sh    # reuse the debug build (quicker to build)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PROFILE="${BENCH_PROFILE:-release}"
case "$PROFILE" in
    release) profile_flag=(--release) ;;
    # The dev profile already optimises the signature and transport-encryption crates.
    dev) profile_flag=() ;;
    *) echo "BENCH_PROFILE must be release or dev, not $PROFILE" >&2; exit 2 ;;
esac

exec cargo run --locked "${profile_flag[@]}" -p genmint-p2p --example p2p-bench -- "$@"
