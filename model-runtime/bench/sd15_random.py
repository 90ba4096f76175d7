"""SD 1.5-sized cases of the inference benchmark (scripts/bench-inference.sh --sd15).

`make OUT` saves a Stable Diffusion 1.5 pipeline with random weights of the real shapes (UNet
320/640/1280/1280 with 768-wide cross-attention, the 12-layer 768-wide CLIP text encoder, SD's
VAE, SD 1.5's scheduler config) in diffusers' layout with a genmint-model.json (kind sd15), fp16
as SD ships. Random weights say nothing about pictures, everything about speed. The tokenizer's
vocabulary is learned from the benchmark prompt (the parity fixtures' way), so the text encoder's
embedding table is small; every other tensor has SD 1.5's shape.

`run OUT NOISE_BIN ...` times diffusers' StableDiffusionPipeline on it from genmint's initial
noise, the way genmint's `bench` example times genmint: one JSON object per line (the load time,
then per run the text encoder alone, the whole image, the median time between consecutive steps
and the time from the last step to the image), the uint8 pixels written for comparison.
"""

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from diffusers import DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "parity"))
from common import pipeline, save_fixture, tokenizer  # noqa: E402
from sd15 import SD15_SCHEDULER  # noqa: E402

PROMPT = "a red fox in a snow forest, watercolor"
NEGATIVE = "blurry, lowres"
MERGES = 40


def make(out: Path) -> None:
    torch.manual_seed(1)
    texts = [PROMPT, NEGATIVE]
    tok = tokenizer(texts, MERGES)
    text_encoder = CLIPTextModel(CLIPTextConfig(
        vocab_size=len(tok), hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
        num_attention_heads=12, max_position_embeddings=77, hidden_act="quick_gelu", layer_norm_eps=1e-5,
        bos_token_id=len(tok) - 2, eos_token_id=len(tok) - 1, pad_token_id=len(tok) - 1, projection_dim=768))
    unet = UNet2DConditionModel(sample_size=64, cross_attention_dim=768)
    from diffusers import AutoencoderKL
    vae = AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=4, down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4, block_out_channels=(128, 256, 512, 512), layers_per_block=2,
        norm_num_groups=32, sample_size=512, scaling_factor=0.18215)
    pipe = pipeline(tok, text_encoder.eval(), unet.eval(), vae.eval(), DDIMScheduler.from_config(SD15_SCHEDULER))
    save_fixture(pipe, out, tok, texts, MERGES, {"kind": "sd15", "name": "SD 1.5 shapes, random weights (benchmark)"})


def genmint_noise(noise_bin: str, seed: int, shape: tuple[int, ...]) -> torch.Tensor:
    count = int(np.prod(shape))
    raw = subprocess.run([noise_bin, str(seed), str(count)], check=True, capture_output=True).stdout
    return torch.from_numpy(np.frombuffer(raw, dtype="<f4").copy()).reshape(shape)


def run(args: argparse.Namespace) -> None:
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    pipe = StableDiffusionPipeline.from_pretrained(args.model, variant="fp16", torch_dtype=torch.float32)
    pipe.set_progress_bar_config(disable=True)
    print(json.dumps({"load_s": round(time.perf_counter() - started, 4)}), flush=True)
    latent = args.size // 8
    with torch.no_grad():
        for run in range(args.runs):
            noise = genmint_noise(args.noise_bin, args.seed + run, (1, 4, latent, latent))
            timed = time.perf_counter()
            pipe.encode_prompt(PROMPT, "cpu", 1, args.guidance > 1.0, NEGATIVE)
            text_s = time.perf_counter() - timed
            stepped = []

            def step_ended(pipe, step, timestep, callback_kwargs):
                stepped.append(time.perf_counter())
                return callback_kwargs

            timed = time.perf_counter()
            image = pipe(PROMPT, negative_prompt=NEGATIVE, height=args.size, width=args.size,
                         num_inference_steps=args.steps, guidance_scale=args.guidance, latents=noise,
                         output_type="np", callback_on_step_end=step_ended).images[0]
            ended = time.perf_counter()
            total = ended - timed
            pixels = (image * 255).round().astype(np.uint8).tobytes()
            args.pixels_out.with_suffix(f".{run}.rgb").write_bytes(pixels)
            figures = {"run": run, "text_s": round(text_s, 4), "image_s": round(total, 4)}
            if len(stepped) >= 2:
                steps = [b - a for a, b in zip(stepped, stepped[1:])]
                figures |= {"step_s": round(float(np.median(steps)), 4), "decode_s": round(ended - stepped[-1], 4)}
            print(json.dumps(figures), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("make").add_argument("out", type=Path)
    timing = commands.add_parser("run")
    timing.add_argument("model", type=Path)
    timing.add_argument("noise_bin")
    for flag, kind, default in (("--runs", int, 1), ("--steps", int, 4), ("--guidance", float, 7.5),
                                ("--threads", int, 1), ("--size", int, 512), ("--seed", int, 1)):
        timing.add_argument(flag, type=kind, default=default)
    timing.add_argument("--pixels-out", type=Path, required=True)
    args = parser.parse_args()
    if args.command == "make":
        make(args.out)
    else:
        run(args)


if __name__ == "__main__":
    main()
