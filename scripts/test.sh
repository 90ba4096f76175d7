#!/usr/bin/env bash
# The whole test suite, as CI runs it: installs the tools (scripts/setup.sh), then formatting,
# lints, the contract tests, the ABI and web-bundle drift checks, every cargo test, a check that the
# `cuda` build compiles, the web page in headless Chromium, and (as root) the NAT test in network
# namespaces. The end-to-end tests start their own anvil and Kubo daemons on loopback (one per
# test, in temporary directories).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export GENMINT_TOOLS="${GENMINT_TOOLS:-$ROOT/.tools}"
# Outside the clone, so a fresh clone at another path reuses the compiled dependencies.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/genmint/target}"
FORGE="$GENMINT_TOOLS/bin/forge"

step() { printf '\n==> %s\n' "$*"; }
started=$SECONDS

step "setup"
bash scripts/setup.sh

step "cargo fmt --check"
cargo fmt --all -- --check

step "forge fmt --check, forge test"
(cd contracts && "$FORGE" fmt --check && "$FORGE" test)

step "gas: snapshot within 3% (contracts/.gas-snapshot), benchmark within budget"
(cd contracts && "$FORGE" snapshot --match-contract GasTest --check --tolerance 3)
bash scripts/gas-benchmark.sh

step "contract artifact matches the sources"
bash scripts/contracts-artifact.sh --check

step "web page bundle matches its sources"
bash scripts/web-bundle.sh --check

step "cargo clippy"
cargo clippy --locked --workspace --all-targets -- -D warnings

step "cargo build (the end-to-end tests run the genmint binary)"
cargo build --locked --workspace --bins

step "cargo test"
cargo test --locked --workspace

step "the cuda build compiles (nvcc and the CUDA headers from NVIDIA's wheels; no GPU needed)"
# Its own target dir under ~/.cache/genmint: candle's kernels are compiled once (~10 min on 2
# cores), then this takes seconds.
bash scripts/cuda-build.sh --check

step "inference benchmark, genmint's side only (short mode: it runs; no PyTorch, no timing)"
bash scripts/bench-inference.sh --short

step "browser test: the web page in headless Chromium against genmint dev"
bash scripts/browser-test.sh

step "behind NAT: a NATed node in a network namespace takes and mints a forwarded job"
if [ "$(id -u)" -ne 0 ]; then
  echo "SKIPPED scripts/nat-test.sh: it needs root for network namespaces and iptables (run it as root)"
elif ! { ip netns add "gm-probe-$$" && ip netns del "gm-probe-$$"; } >/dev/null 2>&1; then
  echo "SKIPPED scripts/nat-test.sh: \`ip netns add\` does not work here (no iproute2, or no permission for network namespaces)"
else
  bash scripts/nat-test.sh
fi

step "all tests passed in $((SECONDS - started)) s"
