#!/usr/bin/env bash
# Evaluates genmint's default model (genmint-emoji-32) with `genmint models eval`: prompt adherence on the held-out prompts by nearest-neighbour retrieval over the training
# images (against a random-prompt baseline), diversity over seeds, CPU seconds per image, and
# determinism across runs and thread counts. Writes the contact sheet beside the weights.
#
# Needs scripts/setup.sh (the MiniLM text encoder) and the training run's retrieval index
# (scripts/train-default-model.sh writes .tools/train-runs/genmint-emoji-32/retrieval.bin).
# Extra arguments go to `genmint models eval` (e.g. --limit 64).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS="${GENMINT_TOOLS:-$ROOT/.tools}"
MODEL_SOURCE="$ROOT/model-runtime/models/genmint-emoji-32"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

cd "$ROOT"
# The dev profile compiles candle, gemm and sha2 at opt-level 3, so inference runs at release speed
# without a release build of everything else.
cargo build --locked -p genmint-node --bin genmint
GENMINT="${CARGO_TARGET_DIR:-$ROOT/target}/debug/genmint"
# An empty data dir: `models eval` assembles the default model (shipped files + MiniLM) in it.
"$GENMINT" --data-dir "$WORK" models eval \
    --heldout "$MODEL_SOURCE/heldout.json" \
    --retrieval "$TOOLS/train-runs/genmint-emoji-32" \
    --out "$MODEL_SOURCE/contact-sheet.png" \
    "$@"
