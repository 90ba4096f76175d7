# Sourced by scripts/parity-fixtures.sh and scripts/bench-inference.sh: the reference Python stack
# (torch on the CPU, diffusers, transformers, safetensors, numpy) in a venv in the git-ignored tools
# folder ($TOOLS/parity-venv). Installs the pinned versions from PyPI once (torch's wheel is large),
# then is offline and idempotent. Sets PYTHON. Needs TOOLS and a `say` function.

VENV="$TOOLS/parity-venv"
PYTHON="$VENV/bin/python"

# The versions the committed fixtures were made with (a local build tag such as +cu128 is ignored).
PINS=(torch==2.9.1 diffusers==0.42.1 transformers==5.25.0 safetensors==0.8.0 numpy==2.4.6)

reference_python_installed() {
  [ -x "$PYTHON" ] && "$PYTHON" - "${PINS[@]}" <<'PY' 2>/dev/null
import sys
from importlib.metadata import version
for pin in sys.argv[1:]:
    name, wanted = pin.split("==")
    if version(name).split("+")[0] != wanted:
        sys.exit(1)
PY
}

if ! reference_python_installed; then
  say "installing ${PINS[*]} into $VENV (PyPI; torch's wheel is large, this takes minutes once)"
  [ -x "$PYTHON" ] || python3 -m venv "$VENV"
  "$PYTHON" -m pip install --quiet --upgrade pip
  "$PYTHON" -m pip install --quiet "${PINS[@]}"
  reference_python_installed || { echo "$VENV lacks the pinned versions after installing" >&2; exit 1; }
fi
