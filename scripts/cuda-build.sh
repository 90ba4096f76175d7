#!/usr/bin/env bash
# Compiles genmint's `cuda` build on a machine without a GPU. NVIDIA's compiler (nvcc, ptxas, the
# NVVM library) and the CUDA runtime headers come from NVIDIA's wheels on PyPI, installed once into
# the tools folder ($GENMINT_TOOLS/cuda, git-ignored) as one CUDA 13 tree with bin/, include/,
# nvvm/ and lib/. The build has its own cargo target dir (default $HOME/.cache/genmint/target-cuda)
# so the kernels candle compiles at build time are compiled once and reused by later runs.
#
# Usage: scripts/cuda-build.sh [--check | --release | --env]
#   --check    (default) `cargo check` of genmint-model-runtime with `--features cuda`: what CI runs
#   --release  the release `genmint` binary with `--features cuda`; prints its path and size
#   --env      print the exports that point a shell at the toolkit, for other cargo commands
# Environment: CUDA_COMPUTE_CAP (default 90, Hopper: the compute capability the kernels are built
# for; 80 Ampere, 89 Ada), GENMINT_CUDA_TARGET_DIR (the target dir), CUDAFORGE_THREADS (parallel
# nvcc jobs, default every core).
# Idempotent and offline once installed: a second run checks versions and only rebuilds what changed.
#
# Linking (--release) also needs the driver (libcuda), cuBLAS, cuBLASLt, cuRAND and NVRTC, which
# candle links dynamically and which no machine without a GPU has. The binary is linked against
# link stubs instead, as CUDA's own lib64/stubs are used: small shared libraries with the real
# libraries' sonames that define every CUDA symbol the compiled crates leave undefined (read from
# the built rlibs with nm). They are never loaded: on the GPU machine the driver and the CUDA 13
# wheels (PyTorch's cu130 ones, say) provide the real libraries; `ldd` there shows which.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
TOOLS="${GENMINT_TOOLS:-$ROOT/.tools}"
CUDA_DIR="$TOOLS/cuda"
say() { printf 'cuda-build: %s\n' "$*" >&2; }

# The CUDA 12 nvcc wheels hold no nvcc executable; the 13.0 ones do. These five form one toolkit.
WHEELS=(
  nvidia-cuda-nvcc==13.0.88
  nvidia-nvvm==13.0.88
  nvidia-cuda-crt==13.0.88
  nvidia-cuda-runtime==13.0.96
  nvidia-cuda-cccl==13.0.85
)
TREE="$CUDA_DIR/nvidia/cu13"

installed() {
  local spec name version
  for spec in "${WHEELS[@]}"; do
    name="${spec%%==*}"
    version="${spec##*==}"
    [ -d "$CUDA_DIR/${name//-/_}-$version.dist-info" ] || return 1
  done
  [ -x "$TREE/bin/nvcc" ] && [ -f "$TREE/include/cuda_runtime.h" ]
}

if ! installed; then
  say "installing the CUDA 13 compiler and headers (${WHEELS[*]}) into $CUDA_DIR"
  rm -rf "$CUDA_DIR"
  # One pip call, so the five wheels land together in one nvidia/cu13 tree.
  python3 -m pip install --quiet --no-deps --disable-pip-version-check --target "$CUDA_DIR" "${WHEELS[@]}"
  installed || { say "the wheels installed without $TREE/bin/nvcc or the runtime headers"; exit 1; }
fi
# The linker looks for the unversioned name; the wheel ships only libcudart.so.13.
ln -sf libcudart.so.13 "$TREE/lib/libcudart.so"

export CUDA_ROOT="$TREE" CUDA_PATH="$TREE"
export PATH="$TREE/bin:$PATH"
export LIBRARY_PATH="$TREE/lib${LIBRARY_PATH:+:$LIBRARY_PATH}"
export CUDA_COMPUTE_CAP="${CUDA_COMPUTE_CAP:-90}"
export CUDAFORGE_THREADS="${CUDAFORGE_THREADS:-$(nproc)}"
export CARGO_TARGET_DIR="${GENMINT_CUDA_TARGET_DIR:-$HOME/.cache/genmint/target-cuda}"

# Writes link stubs into $1: for each library candle links, the CUDA symbols the release rlibs
# leave undefined, as empty functions in a shared library named and sonamed like the real one.
link_stubs() {
  local dir="$1" undefined lib soname pattern
  mkdir -p "$dir"
  undefined="$(for rlib in "$CARGO_TARGET_DIR"/release/deps/lib*.rlib; do nm -u "$rlib" 2>/dev/null; done |
    awk '$1 == "U" { print $2 }' | sort -u)"
  # library, soname, symbols (cuda* symbols are the runtime's: the real libcudart is linked).
  while read -r lib soname pattern; do
    {
      echo "/* Link stub for $soname: genmint's cuda build links against it and loads the real one. */"
      grep -E "$pattern" <<<"$undefined" | sed 's/.*/void &(void) {}/' || true
    } > "$dir/$lib.c"
    cc -shared -fPIC -Wl,-soname,"$soname" -o "$dir/$lib.so" "$dir/$lib.c"
  done <<'LIBS'
libcuda libcuda.so.1 ^cu[A-Z]
libnvrtc libnvrtc.so.13 ^nvrtc
libcurand libcurand.so.10 ^curand
libcublas libcublas.so.13 ^cublas([^L]|L[^t]|$)
libcublasLt libcublasLt.so.13 ^cublasLt
LIBS
  say "link stubs in $dir: $(grep -c '^void' "$dir"/*.c | tr '\n' ' ')"
}

mode="${1:---check}"
case "$mode" in
  --env)
    for var in CUDA_ROOT CUDA_PATH PATH LIBRARY_PATH CUDA_COMPUTE_CAP CUDAFORGE_THREADS CARGO_TARGET_DIR; do
      printf 'export %s=%q\n' "$var" "${!var}"
    done
    ;;
  --check)
    say "nvcc $(nvcc --version | sed -n 's/.*release \([0-9.]*\).*/\1/p'), compute capability $CUDA_COMPUTE_CAP, target dir $CARGO_TARGET_DIR"
    cargo check --locked -p genmint-model-runtime --features cuda --all-targets
    ;;
  --release)
    # The libraries first (no link step), so the stubs can be made from what they leave undefined.
    cargo build --locked --release -p genmint-model-runtime --features cuda
    link_stubs "$CUDA_DIR/stubs"
    export LIBRARY_PATH="$CUDA_DIR/stubs:$LIBRARY_PATH"
    cargo build --locked --release -p genmint-node --features cuda
    bin="$CARGO_TARGET_DIR/release/genmint"
    say "built $bin ($(du -h "$bin" | cut -f1)); it needs libcuda (the driver) and libcublas at run time"
    echo "$bin"
    ;;
  *)
    echo "unknown argument: $mode (expected --check, --release or --env)" >&2
    exit 2
    ;;
esac
