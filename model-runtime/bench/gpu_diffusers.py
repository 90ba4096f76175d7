"""diffusers' side of the GPU benchmark (scripts/gpu-bench.sh): the SD 1.5- or SDXL-shaped
pipeline genmint times, with random weights made on the device from the same configs (the
unet/, vae/ and text encoder configs of the model directory `genmint models random` wrote), in
fp16 with PyTorch's scaled-dot-product attention (diffusers' default processor on torch 2), DDIM,
the same size, steps and guidance. The prompt embeddings are given (random, the text encoders'
output shapes), so `image_s` here leaves out text encoding, which genmint's includes (a few ms on
a GPU); `it_s` (UNet passes per second between the first and last step's callback, the same
measure genmint's bench takes) compares the denoising loops alone.

One JSON object per line: the setup, then per run `image_s` and `it_s` (run 0 is the warm-up).
"""

import argparse
import json
import time
from pathlib import Path

import torch
from diffusers import (AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, StableDiffusionXLPipeline,
                       UNet2DConditionModel)


def read(model: Path, relative: str) -> dict:
    return json.loads((model / relative).read_text())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("model", type=Path, help="a model directory written by `genmint models random`")
    parser.add_argument("--device", default="cuda:0")
    parser.add_argument("--dtype", default="float16", choices=["float16", "float32"])
    parser.add_argument("--size", type=int, required=True)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--guidance", type=float, default=7.5)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    dtype = getattr(torch, args.dtype)
    device = torch.device(args.device)
    xl = (args.model / "text_encoder_2").is_dir()

    started = time.perf_counter()
    torch.manual_seed(1)
    with torch.device(device):
        unet = UNet2DConditionModel.from_config(read(args.model, "unet/config.json"))
        vae = AutoencoderKL.from_config(read(args.model, "vae/config.json"))
    unet, vae = unet.to(dtype).eval(), vae.to(dtype).eval()
    scheduler = DDIMScheduler.from_config(read(args.model, "scheduler/scheduler_config.json"))
    width = sum(read(args.model, f"text_encoder{s}/config.json")["hidden_size"] for s in (["", "_2"] if xl else [""]))
    tokens = read(args.model, "text_encoder/config.json")["max_position_embeddings"]
    embeds = {
        "prompt_embeds": torch.randn(1, tokens, width, device=device, dtype=dtype),
        "negative_prompt_embeds": torch.randn(1, tokens, width, device=device, dtype=dtype),
    }
    if xl:
        pooled = read(args.model, "text_encoder_2/config.json")["projection_dim"]
        embeds["pooled_prompt_embeds"] = torch.randn(1, pooled, device=device, dtype=dtype)
        embeds["negative_pooled_prompt_embeds"] = torch.randn(1, pooled, device=device, dtype=dtype)
        pipe = StableDiffusionXLPipeline(vae=vae, text_encoder=None, text_encoder_2=None, tokenizer=None,
                                         tokenizer_2=None, unet=unet, scheduler=scheduler)
    else:
        pipe = StableDiffusionPipeline(vae=vae, text_encoder=None, tokenizer=None, unet=unet, scheduler=scheduler,
                                       safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    processors = sorted({type(p).__name__ for p in unet.attn_processors.values()})
    print(json.dumps({"load_s": round(time.perf_counter() - started, 4), "side": "diffusers",
                      "device": args.device, "dtype": args.dtype, "attention": processors,
                      "torch": torch.__version__, "sdxl": xl}), flush=True)

    latent = args.size // 8
    for run in range(args.runs + 1):
        stamps: list[float] = []

        def on_step(pipe, step, timestep, kwargs):
            stamps.append(time.perf_counter())
            return kwargs

        generator = torch.Generator("cpu").manual_seed(run + 1)
        latents = torch.randn((1, 4, latent, latent), generator=generator).to(device, dtype)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        timed = time.perf_counter()
        with torch.no_grad():
            pipe(height=args.size, width=args.size, num_inference_steps=args.steps, guidance_scale=args.guidance,
                 latents=latents, output_type="np", callback_on_step_end=on_step, **embeds)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        image_s = time.perf_counter() - timed
        it_s = (len(stamps) - 1) / (stamps[-1] - stamps[0]) if len(stamps) > 1 else float("nan")
        print(json.dumps({"run": run, "warmup": run == 0, "size": args.size, "steps": args.steps,
                          "image_s": round(image_s, 4), "it_s": round(it_s, 4)}), flush=True)
    if device.type == "cuda":
        print(json.dumps({"peak_gib": round(torch.cuda.max_memory_allocated(device) / 2**30, 2)}), flush=True)


if __name__ == "__main__":
    main()
