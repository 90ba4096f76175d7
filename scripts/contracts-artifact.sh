#!/usr/bin/env bash
# Builds the contracts with forge and writes contracts/artifacts/GenmintNFT.json (ABI, creation and
# runtime bytecode), the file the Rust crates compile against so that cargo never needs forge.
#
#   scripts/contracts-artifact.sh          rebuild and rewrite the artifact
#   scripts/contracts-artifact.sh --check  build into a temporary directory and fail if the
#                                          committed artifact differs from a fresh build
#
# forge comes from $GENMINT_TOOLS/bin (default: .tools/bin, installed by scripts/setup.sh).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
contracts="$root/contracts"
forge="${GENMINT_TOOLS:-$root/.tools}/bin/forge"
artifact="$contracts/artifacts/GenmintNFT.json"

case "${1:-}" in
"") mode=write ;;
--check) mode=check ;;
*)
    echo "usage: $0 [--check]" >&2
    exit 2
    ;;
esac

if [[ ! -x "$forge" ]]; then
    echo "forge not found at $forge: run scripts/setup.sh (or set GENMINT_TOOLS)" >&2
    exit 1
fi
command -v node >/dev/null || { echo "node is required (it also runs the solc wrapper)" >&2; exit 1; }

if [[ "$mode" == check ]]; then
    build="$(mktemp -d)"
    trap 'rm -rf "$build"' EXIT
    out="$build/out"
    cache="$build/cache"
else
    out="$contracts/out"
    cache="$contracts/cache"
fi

if ! log="$(cd "$contracts" && "$forge" build --out "$out" --cache-path "$cache" 2>&1)"; then
    echo "$log" >&2
    echo "forge build failed" >&2
    exit 1
fi

# Keep only what alloy's `sol!` needs (and the compiler, which deployment records name), pretty-printed with a fixed layout so rebuilds compare byte for byte.
extract() {
    node -e '
        const built = require(process.argv[1]);
        const settings = built.metadata.settings;
        const artifact = {
            abi: built.abi,
            bytecode: { object: built.bytecode.object },
            deployedBytecode: { object: built.deployedBytecode.object },
            compiler: {
                version: built.metadata.compiler.version,
                optimizerRuns: settings.optimizer.runs,
                evmVersion: settings.evmVersion,
            },
        };
        process.stdout.write(JSON.stringify(artifact, null, 2) + "\n");
    ' "$out/GenmintNFT.sol/GenmintNFT.json"
}

if [[ "$mode" == write ]]; then
    mkdir -p "$(dirname "$artifact")"
    extract >"$artifact.tmp"
    mv "$artifact.tmp" "$artifact"
    echo "wrote ${artifact#"$root"/}"
else
    extract >"$build/GenmintNFT.json"
    if [[ ! -f "$artifact" ]] || ! cmp -s "$build/GenmintNFT.json" "$artifact"; then
        echo "contract changed: run scripts/contracts-artifact.sh and commit contracts/artifacts" >&2
        exit 1
    fi
    echo "contracts/artifacts/GenmintNFT.json is up to date"
fi
