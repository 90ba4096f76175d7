#!/usr/bin/env bash
# Every GPU measurement at once, for a short slot on a GPU machine that reaches no registry.
#
#   scripts/gpu-bench.sh --pack
#       Here, before the slot: builds the release `genmint` with --features cuda
#       (scripts/cuda-build.sh --release), and puts it, stripped, into target/gpu-bench/ with
#       the CUDA runtime library it links (libcudart.so.13) and the wheels of diffusers (pure
#       Python) and its pure-Python dependencies, for a machine whose Python has torch and
#       transformers but not diffusers. Carry target/gpu-bench to the GPU machine with the clone.
#
#   scripts/gpu-bench.sh [--device cuda:0] [--bin FILE] [--python PY] [--quick] [--out DIR]
#       On the GPU machine: makes SD 1.5- and SDXL-shaped models with random weights there
#       (`genmint models random`), then times genmint (`genmint models bench`: s/image and it/s)
#       for SD 1.5 at 512x512 (50 DDIM steps, guidance 7.5; f16, and f32 beside it) and SDXL at
#       1024x1024 (30 steps, f16; SDXL's VAE decodes in f32, as diffusers does), and, where the
#       Python has torch (and diffusers, or the packed wheels), diffusers fp16 with SDPA on the
#       same card, configs, sizes, steps and guidance (model-runtime/bench/gpu_diffusers.py).
#       Flash attention is measured where the binary was built with it (its engine says
#       flash-attn). Without torch it measures genmint alone and says so. Every figure (JSON
#       lines), the log and a summary table (summary.md) go into one folder: $OUT when set, else
#       --out, else target/gpu-bench/out. Each step has a time limit; the whole run is meant to
#       finish within about 8 minutes on a GPU.
#       --quick: a dry run of the same steps, 2 steps each, no timed runs (on --device cpu: SD 1.5
#       alone, in f32 at 256x256), to check the script.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PACK="$ROOT/target/gpu-bench"
say() { printf 'gpu-bench: %s\n' "$*" >&2; }

device=cuda:0 bin="" python=python3 quick=false out="${OUT:-}" pack=false
while [ $# -gt 0 ]; do
  case "$1" in
    --pack) pack=true; shift ;;
    --device) device="$2"; shift 2 ;;
    --bin) bin="$2"; shift 2 ;;
    --python) python="$2"; shift 2 ;;
    --quick) quick=true; shift ;;
    --out) out="${OUT:-$2}"; shift 2 ;;
    *) echo "gpu-bench: unknown argument $1 (see the header of $0)" >&2; exit 2 ;;
  esac
done

if $pack; then
  built="$(bash "$ROOT/scripts/cuda-build.sh" --release | tail -1)"
  mkdir -p "$PACK/lib" "$PACK/wheels"
  strip -o "$PACK/genmint" "$built"
  cp "${GENMINT_TOOLS:-$ROOT/.tools}/cuda/nvidia/cu13/lib/libcudart.so.13" "$PACK/lib/"
  python3 -m pip download --quiet --no-deps --disable-pip-version-check -d "$PACK/wheels" \
    diffusers==0.42.1 importlib_metadata==10.2.0 zipp
  say "packed $PACK: genmint $(du -h "$PACK/genmint" | cut -f1), $(ls "$PACK/wheels" | wc -l) wheels"
  exit 0
fi

bin="${bin:-$PACK/genmint}"
[ -x "$bin" ] || { say "no genmint binary at $bin: run scripts/gpu-bench.sh --pack first, or pass --bin"; exit 2; }
out="${out:-$PACK/out}"
mkdir -p "$out"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
exec > >(tee -a "$out/log.txt") 2>&1
started=$SECONDS
say "started $(date -u +%FT%TZ) on $device, binary $bin, figures in $out"

# The CUDA libraries the binary loads: the packed runtime, torch's NVIDIA wheels, a system CUDA.
libs="$PACK/lib"
if "$python" -c "import torch" 2>/dev/null; then
  nvidia_libs="$("$python" - <<'PY' 2>/dev/null || true
import glob, os, site
dirs = set()
for root in site.getsitepackages() + [site.getusersitepackages()]:
    for lib in glob.glob(os.path.join(root, "nvidia", "**", "lib*.so*"), recursive=True):
        dirs.add(os.path.dirname(lib))
print(":".join(sorted(dirs)))
PY
)"
  [ -z "$nvidia_libs" ] || libs="$libs:$nvidia_libs"
fi
for dir in /usr/local/nvidia/lib64 /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib; do
  [ -d "$dir" ] && libs="$libs:$dir"
done
export LD_LIBRARY_PATH="$libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
# The binary was linked against stubs: the real driver and CUDA libraries must be found here.
if missing="$(ldd "$bin" 2>/dev/null | awk '/not found/ { print $1 }' | tr '\n' ' ')" && [ -n "$missing" ]; then
  say "the CUDA libraries $missing are not found (driver: libcuda.so.1; cuBLAS/cuRAND: CUDA 13 wheels such as PyTorch's cu130 ones); searched $LD_LIBRARY_PATH"
  exit 2
fi
export GENMINT_LOG="${GENMINT_LOG:-warn}"

{
  echo "date: $(date -u +%FT%TZ)"
  echo "device: $device"
  command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
  echo "genmint: $("$bin" --version 2>/dev/null || echo unknown)"
  echo "cpu: $(nproc) cores"
} > "$out/machine.txt"
cat "$out/machine.txt"

# diffusers: the Python's own, or the packed wheels installed into a scratch folder.
reference=false
if "$python" -c "import torch, transformers" 2>/dev/null; then
  if ! "$python" -c "import diffusers" 2>/dev/null && [ -d "$PACK/wheels" ]; then
    "$python" -m pip install --quiet --no-index --no-deps --disable-pip-version-check \
      --target "$work/python" "$PACK"/wheels/*.whl && export PYTHONPATH="$work/python${PYTHONPATH:+:$PYTHONPATH}"
  fi
  if "$python" -c "import diffusers" 2>/dev/null; then
    reference=true
    say "diffusers $("$python" -c 'import diffusers; print(diffusers.__version__)'), torch $("$python" -c 'import torch; print(torch.__version__)')"
  fi
fi
$reference || say "no torch with diffusers in $python: measuring genmint alone (diffusers' columns stay empty)"

# The models, both at once (SDXL's takes longest). The CPU dry run leaves SDXL out: its 6 GB of
# weights take minutes to write on a small machine, and it could never run there.
xl=true
$quick && [ "$device" = cpu ] && xl=false
"$bin" models random --shape sd15 "$work/sd15" > /dev/null &
sd15_pid=$!
if $xl; then timeout 300 "$bin" models random --shape sdxl "$work/sdxl" > /dev/null; fi
wait "$sd15_pid"
say "random models written after $((SECONDS - started)) s$($xl || echo ' (SD 1.5 only: SDXL is left out of the CPU dry run)')"

guidance=7.5 slow=1
if $quick; then
  sd15_size=512 sdxl_size=1024 sd15_steps=2 sdxl_steps=2 runs=0
  # On a CPU: the smallest SD 1.5 size, one UNet row per step, and time to spare.
  [ "$device" = cpu ] && sd15_size=256 guidance=1 slow=4
else
  sd15_size=512 sdxl_size=1024 sd15_steps=50 sdxl_steps=30 runs=2
fi

# case name, model, dtype, size, steps, limit in seconds
genmint_case() {
  local name="$1" model="$2" dtype="$3" size="$4" steps="$5" limit="$6"
  [ -d "$work/$model" ] || return 0
  say "genmint $name"
  if ! timeout "$((limit * slow))" "$bin" models bench "$work/$model" --device "$device" --dtype "$dtype" \
      --size "$size" --steps "$steps" --guidance "$guidance" --runs "$runs" > "$out/genmint-$name.jsonl"; then
    say "genmint $name failed or ran past $limit s (see log.txt; a CUDA 13 build needs an NVIDIA driver >= 580)"
  fi
}
diffusers_case() {
  local name="$1" model="$2" size="$3" steps="$4" limit="$5" dtype=float16
  $reference || return 0
  [ "$device" = cpu ] && dtype=float32
  [ -d "$work/$model" ] || return 0
  say "diffusers $name"
  timeout "$((limit * slow))" "$python" "$ROOT/model-runtime/bench/gpu_diffusers.py" "$work/$model" \
    --device "$device" --dtype "$dtype" --size "$size" --steps "$steps" --guidance "$guidance" --runs "$runs" \
    > "$out/diffusers-$name.jsonl" ||
    say "diffusers $name failed or ran past $limit s (see log.txt)"
}

half=f16
[ "$device" = cpu ] && half=f32
reference_dtype=fp16
[ "$device" = cpu ] && reference_dtype=fp32
genmint_case "sd15-$sd15_size-$half" sd15 "$half" "$sd15_size" "$sd15_steps" 150
diffusers_case "sd15-$sd15_size-$reference_dtype" sd15 "$sd15_size" "$sd15_steps" 120
$quick || genmint_case "sd15-$sd15_size-f32" sd15 f32 "$sd15_size" "$sd15_steps" 150
genmint_case "sdxl-$sdxl_size-$half" sdxl "$half" "$sdxl_size" "$sdxl_steps" 200
diffusers_case "sdxl-$sdxl_size-$reference_dtype" sdxl "$sdxl_size" "$sdxl_steps" 150

# The summary: median of the timed runs (the warm-up run alone in --quick).
python3 - "$out" "$reference" <<'PY' > "$out/summary.md"
import json, statistics, sys
from pathlib import Path
out, reference = Path(sys.argv[1]), sys.argv[2] == "true"
def runs(path):
    if not path.exists():
        return None, []
    lines = [json.loads(l) for l in path.read_text().splitlines() if l.strip().startswith("{")]
    head = next((l for l in lines if "load_s" in l), None)
    timed = [l for l in lines if "run" in l and not l["warmup"]] or [l for l in lines if "run" in l]
    return head, timed
def med(rows, key):
    values = [r[key] for r in rows if isinstance(r.get(key), (int, float))]
    return f"{statistics.median(values):.3f}" if values else "–"
print((out / "machine.txt").read_text().strip().replace("\n", "  \n"))
print()
print("| case | genmint s/image | genmint it/s | genmint dtype / engine | diffusers s/image | diffusers it/s | ratio (s/image) |")
print("|---|---|---|---|---|---|---|")
for path in sorted(out.glob("genmint-*.jsonl")):
    name = path.stem[len("genmint-"):]
    head, rows = runs(path)
    family, size = name.split("-")[:2]
    reference = {"f16": "fp16", "f32": "fp32"}.get(name.split("-")[-1])
    d_head, d_rows = runs(out / f"diffusers-{family}-{size}-{reference}.jsonl")
    ratio = "–"
    if rows and d_rows:
        ratio = f"{statistics.median(r['image_s'] for r in rows) / statistics.median(r['image_s'] for r in d_rows):.2f}"
    engine = f"{head['dtype']} / {head['engine']}" if head else "did not load"
    print(f"| {name} | {med(rows, 'image_s')} | {med(rows, 'it_s')} | {engine} | {med(d_rows, 'image_s')} | {med(d_rows, 'it_s')} | {ratio} |")
if not reference:
    print("\nNo torch with diffusers on this machine: genmint alone was measured.")
print("\ngenmint's s/image includes text encoding; diffusers' is given the prompt embeddings. it/s is"
      " UNet passes per second between the first and last step of a run (median of the timed runs).")
PY
cat "$out/summary.md"
say "done in $((SECONDS - started)) s; figures in $out"
