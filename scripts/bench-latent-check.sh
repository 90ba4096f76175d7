#!/usr/bin/env bash
# The step check's benchmark (model-runtime/examples/latent-check.rs): the cost of a full
# re-generation against a check that replays K of its N denoising steps from the node's latent
# trace, and how often the check accepts a cheating node (another model with its honest trace,
# fewer steps with interpolated entries, fewer steps with their own schedule, one skipped step),
# bit for bit and with the relative-RMS tolerance an honest node in another envelope (f16) needs.
#
#   scripts/bench-latent-check.sh [default|test|MODEL_DIR] [--trials N] [--steps N]
#       [--scheduler NAME] [--checks 1,2,4] [--timing-runs N]
#
# `default` (the default) is the shipped genmint-emoji-32 (needs scripts/setup.sh's MiniLM);
# `test` the SD-shaped test model, whose VAE decode is part of each check. Threads:
# RAYON_NUM_THREADS. Prints one JSON object per line, then the README's Markdown table.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export GENMINT_TOOLS="${GENMINT_TOOLS:-$ROOT/.tools}"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
MODEL="${1:-default}"
[[ $# -gt 0 ]] && shift

cd "$ROOT"
# The dev profile builds the numeric crates and the runtime optimized: release speed for inference.
cargo build --locked -p genmint-model-runtime --example latent-check
exec "$TARGET/debug/examples/latent-check" "$MODEL" "$@"
