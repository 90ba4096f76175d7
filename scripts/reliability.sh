#!/usr/bin/env bash
# The reliability suite at full size (tests/tests/e2e/reliability.rs): real genmint node processes on
# anvil and Kubo under a burst of signed requests (at one node, then spread over three), SIGKILLs at
# random moments, outages of Kubo, the chain RPC and the only peer serving a model, and reorgs that
# drop mints (each must be sent again exactly once). Prints one table row per case: accepted,
# refused with 503, minted, lost, double mints, accept latency, peak RSS, how long it took. Any lost
# job or double mint fails the run.
#
#   scripts/reliability.sh [--requests N] [--kills N] [--outage-secs S] [--reorgs N]
#       defaults 1000 requests, 20 kill runs, 300 s outages, 10 reorgs (about half an hour in all)
#
# The tests run with smaller sizes in every `cargo test` (scripts/test.sh): the short version.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export GENMINT_TOOLS="${GENMINT_TOOLS:-$ROOT/.tools}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/genmint/target}"
requests=1000 kills=20 outage=300 reorgs=10
while [ $# -gt 0 ]; do
  case "$1" in
    --requests) requests="$2"; shift 2 ;;
    --kills) kills="$2"; shift 2 ;;
    --outage-secs) outage="$2"; shift 2 ;;
    --reorgs) reorgs="$2"; shift 2 ;;
    *) echo "reliability: unknown argument $1 (see the header of $0)" >&2; exit 2 ;;
  esac
done
[ -x "$GENMINT_TOOLS/bin/anvil" ] || { echo "reliability: anvil is not installed: run scripts/setup.sh" >&2; exit 1; }

cd "$ROOT"
# The release build, as operators run it (the short version in every test run uses the debug one).
cargo build --quiet --locked --release -p genmint-node --bin genmint
export GENMINT_BIN="$CARGO_TARGET_DIR/release/genmint"
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
status=0
GENMINT_RELIABILITY_REQUESTS="$requests" GENMINT_RELIABILITY_KILLS="$kills" \
  GENMINT_RELIABILITY_OUTAGE_SECS="$outage" GENMINT_RELIABILITY_REORGS="$reorgs" \
  cargo test --quiet --locked -p genmint-tests --test e2e reliability:: -- --nocapture --test-threads 1 \
  >"$log" 2>&1 || status=$?

echo "| case | figures |"
echo "|---|---|"
# A row may follow test progress output on its line.
grep -o 'reliability | .*' "$log" | sed 's/^reliability | \([^|]*\) | \(.*\)$/| \1| \2 |/'
if [ "$status" -ne 0 ]; then
  echo "reliability: a case failed (lost or double-minted jobs, or an error); its output:" >&2
  grep -v 'reliability | ' "$log" | tail -60 >&2
fi
exit "$status"
