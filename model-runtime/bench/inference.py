"""diffusers' side of the inference benchmark (scripts/bench-inference.sh): the same weights,
noise, steps and guidance as genmint's `bench` example, timed the same way.

The default model (a pixel-space UNet2DConditionModel conditioned on all-MiniLM-L6-v2's token
embeddings, DDIM from its scheduler config, classifier-free guidance with a zero unconditional
context, unconditional first in the batch) run as genmint runs it, starting from genmint's own
initial noise (the parity-noise example), so the pictures can be compared. One JSON object per
line: the load time, then per run the text encoder and the whole image, and the uint8 pixels'
sha256 and path.

Usage: inference.py MODEL_DIR MINILM_DIR NOISE_BIN --runs N --steps N --guidance G --threads T
       --prompt TEXT --seed S --pixels-out FILE
"""

import argparse
import hashlib
import json
import subprocess
import time
from pathlib import Path

import numpy as np
import torch
from diffusers import DDIMScheduler, UNet2DConditionModel
from transformers import AutoModel, AutoTokenizer


def genmint_noise(noise_bin: str, seed: int, shape: tuple[int, ...]) -> torch.Tensor:
    count = int(np.prod(shape))
    raw = subprocess.run([noise_bin, str(seed), str(count)], check=True, capture_output=True).stdout
    return torch.from_numpy(np.frombuffer(raw, dtype="<f4").copy()).reshape(shape)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("model", type=Path)
    parser.add_argument("minilm", type=Path)
    parser.add_argument("noise_bin")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--guidance", type=float, default=3.0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--prompt", default="grinning face with smiling eyes")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--pixels-out", type=Path, required=True)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    unet = UNet2DConditionModel.from_pretrained(args.model / "unet", torch_dtype=torch.float32).eval()
    tokenizer = AutoTokenizer.from_pretrained(args.minilm)
    text_model = AutoModel.from_pretrained(args.minilm).eval()
    scheduler = DDIMScheduler.from_pretrained(args.model / "scheduler")
    print(json.dumps({"load_s": round(time.perf_counter() - started, 4)}), flush=True)
    size = unet.config.sample_size
    with torch.no_grad():
        for run in range(args.runs):
            seed = args.seed + run
            noise = genmint_noise(args.noise_bin, seed, (1, unet.config.in_channels, size, size))
            timed = time.perf_counter()
            batch = tokenizer([args.prompt], return_tensors="pt", truncation=True, max_length=128)
            context = text_model(**batch).last_hidden_state
            text_s = time.perf_counter() - timed
            timed = time.perf_counter()
            scheduler.set_timesteps(args.steps)
            x, guided = noise, args.guidance > 1.0
            uncond = torch.zeros_like(context)
            for t in scheduler.timesteps:
                if guided:
                    out = unet(torch.cat([x, x]), t, encoder_hidden_states=torch.cat([uncond, context])).sample
                    out_uncond, out_cond = out.chunk(2)
                    out = out_uncond + args.guidance * (out_cond - out_uncond)
                else:
                    out = unet(x, t, encoder_hidden_states=context).sample
                x = scheduler.step(out, t, x).prev_sample
            denoise_s = time.perf_counter() - timed
            image = ((x[0].clamp(-1, 1) + 1) / 2 * 255).round().to(torch.uint8).permute(1, 2, 0).contiguous()
            pixels = image.numpy().tobytes()
            total = text_s + denoise_s
            path = args.pixels_out.with_suffix(f".{run}.rgb")
            path.write_bytes(pixels)
            print(json.dumps({"run": run, "text_s": round(text_s, 4), "image_s": round(total, 4), "pixels": str(path),
                              "pixels_sha256": hashlib.sha256(pixels).hexdigest()}), flush=True)


if __name__ == "__main__":
    main()
