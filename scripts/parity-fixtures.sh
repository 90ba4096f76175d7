#!/usr/bin/env bash
# Regenerates the diffusers parity fixtures under model-runtime/tests/fixtures/: runs every
# generator model-runtime/parity/*.py with the reference Python stack (torch on the CPU, diffusers,
# transformers, safetensors, numpy) from a venv in the git-ignored tools folder
# ($GENMINT_TOOLS/parity-venv, .tools/ by default). Run by hand after changing a generator; not part
# of setup or the tests, which read the committed fixtures.
# Idempotent and offline once installed: a venv that already has the pinned versions is used as is.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS="${GENMINT_TOOLS:-$ROOT/.tools}"
say() { printf 'parity-fixtures: %s\n' "$*"; }
# shellcheck source=scripts/reference-python.sh
source "$ROOT/scripts/reference-python.sh"

# The generators call cargo for genmint's own initial and step noise (example parity-noise); build it once.
(cd "$ROOT" && cargo build --quiet --locked -p genmint-model-runtime --example parity-noise)
cd "$ROOT"
# single_file.py converts the fixtures sd15.py, sd21.py and sdxl.py write, so it runs last (sharded.py,
# which reads sd15-tiny, sorts after sd15.py).
for generator in model-runtime/parity/*.py; do
  # common.py is the generators' shared module; single_file.py runs last (it reads sd15-tiny).
  [ "$(basename "$generator")" = common.py ] && continue
  [ "$generator" = model-runtime/parity/single_file.py ] && continue
  say "running $generator"
  "$PYTHON" "$generator"
done
say "running model-runtime/parity/single_file.py"
"$PYTHON" model-runtime/parity/single_file.py
say "done; review and commit the changes under model-runtime/tests/fixtures/"
