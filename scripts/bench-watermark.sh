#!/usr/bin/env bash
# The invisible watermark's robustness, quality and speed, measured (README: "Invisible watermark").
#
# Builds a corpus of 512x512 pictures that look like real ones (crops and flips of scikit-image's
# sample photographs, upscaled Noto emoji), marks each with its own token's tag, makes the copies a
# picture meets online (JPEG 90/70/50, WebP, resize to 50 %, crops, brightness and contrast ±10 %,
# PNG re-save, a screenshot-like re-render), and prints the recovery rate per kind of copy, the
# false positives on unmarked pictures and their copies, PSNR/SSIM and embed/detect times.
#
# Usage: scripts/bench-watermark.sh [PICTURES]   (default 300; the work folder is kept in
# $WORK, default /tmp/genmint-watermark-bench). Python packages (scikit-image, Pillow) and the emoji
# go into the git-ignored tools folder once; nothing here runs in the tests.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
TOOLS="${GENMINT_TOOLS:-$ROOT/.tools}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/genmint/target}"
COUNT="${1:-300}"
WORK="${WORK:-/tmp/genmint-watermark-bench}"
VENV="$TOOLS/watermark-venv"
EMOJI="$TOOLS/emoji"
say() { printf '==> %s\n' "$*" >&2; }

if ! "$VENV/bin/python" -c "import skimage, PIL" 2>/dev/null; then
  say "installing scikit-image and Pillow into $VENV (once)"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet "scikit-image==0.26.0" "pillow==13.0.0"
fi
if [ ! -d "$EMOJI/node_modules/emoji-datasource-google" ]; then
  say "installing the Noto emoji images (emoji-datasource-google, Apache-2.0) into $EMOJI (once)"
  mkdir -p "$EMOJI"
  # Its own package.json, or npm would install into the tools folder's project above it.
  [ -f "$EMOJI/package.json" ] || echo '{"name":"genmint-watermark-emoji","private":true}' >"$EMOJI/package.json"
  (cd "$EMOJI" && npm install --silent --no-audit --no-fund emoji-datasource-google@16)
fi

say "building the measuring side (release)"
cargo build --locked --release -p genmint-node --example watermark_bench
BENCH="$CARGO_TARGET_DIR/release/examples/watermark_bench"

rm -rf "$WORK" && mkdir -p "$WORK"
say "$COUNT pictures"
EMOJI_DIR="$EMOJI/node_modules/emoji-datasource-google" "$VENV/bin/python" scripts/watermark/pictures.py corpus "$WORK/original" "$COUNT"
"$BENCH" mark "$WORK/original" "$WORK/marked"
say "copies of the marked and of the unmarked pictures"
"$VENV/bin/python" scripts/watermark/pictures.py copies "$WORK/marked" "$WORK/copies"
"$VENV/bin/python" scripts/watermark/pictures.py copies "$WORK/original" "$WORK/unmarked-copies"

echo
echo "| copy            | recovered  |   rate   | wrong | conf. | detect   |"
echo "|-----------------|------------|----------|-------|-------|----------|"
"$BENCH" detect "$WORK/marked" marked
for dir in "$WORK"/copies/*; do "$BENCH" detect "$dir" marked; done
echo
echo "false positives (unmarked pictures and their copies):"
"$BENCH" detect "$WORK/original" unmarked
for dir in "$WORK"/unmarked-copies/*; do "$BENCH" detect "$dir" unmarked; done

echo
"$VENV/bin/python" scripts/watermark/reference_detector.py --bench "$WORK/marked"
"$VENV/bin/python" scripts/watermark/reference_detector.py --bench "$WORK/copies/jpeg70"
