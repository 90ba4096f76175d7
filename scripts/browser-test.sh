#!/usr/bin/env bash
# The web page in headless Chromium (Debian's package) against a real `genmint dev` stack: see
# tests/browser/web.test.mjs. Needs scripts/setup.sh (Chromium, the test's npm packages) and a built
# genmint binary (`cargo build`); writes its screenshots to $CARGO_TARGET_DIR/browser-screenshots.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS="${GENMINT_TOOLS:-$ROOT/.tools}"
TARGET="${CARGO_TARGET_DIR:-$HOME/.cache/genmint/target}"
export PATH="$TOOLS/bin:$PATH"
export GENMINT_BIN="${GENMINT_BIN:-$TARGET/debug/genmint}"
export GENMINT_BROWSER_DEPS="$TOOLS/browser-test"
export GENMINT_SCREENSHOTS="${GENMINT_SCREENSHOTS:-$TARGET/browser-screenshots}"
export CHROMIUM="${CHROMIUM:-/usr/lib/chromium/chromium}"
[ -x "$GENMINT_BIN" ] || { echo "browser-test: no genmint binary at $GENMINT_BIN; run cargo build first" >&2; exit 1; }
exec node "$ROOT/tests/browser/web.test.mjs"
