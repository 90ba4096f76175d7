#!/usr/bin/env bash
# Bundles the web page's script: node/web/src/main.js and the npm packages it imports (versions
# pinned in node/web/package-lock.json, installed by scripts/setup.sh into $GENMINT_TOOLS/web) into
# node/web/dist/app.js, which is committed so `cargo build` needs no JavaScript tools.
#   scripts/web-bundle.sh          rebuild node/web/dist/app.js
#   scripts/web-bundle.sh --check  rebuild into a temporary file and fail unless it is byte-identical
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS="${GENMINT_TOOLS:-$ROOT/.tools}"
WEB="$ROOT/node/web"
DEPS="$TOOLS/web"
ESBUILD="$DEPS/node_modules/.bin/esbuild"

if [ ! -x "$ESBUILD" ] || ! cmp -s "$WEB/package-lock.json" "$DEPS/package-lock.json"; then
  echo "web-bundle: the page's npm packages are missing or stale; run scripts/setup.sh" >&2
  exit 1
fi

bundle() { # bundle <output file>
  # Run from the sources' folder with relative paths, so nothing of this machine enters the output.
  (cd "$WEB" && NODE_PATH="$DEPS/node_modules" "$ESBUILD" src/main.js --bundle --minify --format=esm \
    --target=es2020 --charset=utf8 --legal-comments=eof --log-level=warning --outfile="$1")
}

if [ "${1:-}" = "--check" ]; then
  fresh="$(mktemp)"
  trap 'rm -f "$fresh"' EXIT
  bundle "$fresh"
  if ! cmp -s "$fresh" "$WEB/dist/app.js"; then
    echo "web-bundle: node/web/dist/app.js does not match its sources; run scripts/web-bundle.sh and commit it" >&2
    exit 1
  fi
  echo "web-bundle: node/web/dist/app.js matches its sources ($(wc -c < "$fresh") bytes)"
else
  bundle "$WEB/dist/app.js"
  echo "web-bundle: wrote node/web/dist/app.js ($(wc -c < "$WEB/dist/app.js") bytes)"
fi
