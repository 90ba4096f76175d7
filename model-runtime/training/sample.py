"""Draw a quick image grid from the latest EMA checkpoint with DDIM + classifier-free guidance, to inspect training progress."""

import argparse
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from embed import TokenEncoder
from export import load_ema
from model_spec import RUN_DIR, SCHEDULER_CONFIG

DEFAULT_PROMPTS = ["grinning face", "red heart", "an emoji of a dog", "pizza", "flag: japan",
                   "thumbs up", "a picture of the sun", "rocket", "a small drawing of a cat", "fire"]


@torch.no_grad()
def ddim_sample(model, context: torch.Tensor, mask: torch.Tensor, steps: int, guidance: float,
                generator: torch.Generator) -> torch.Tensor:
    """DDIM (eta 0) with trailing spacing and v-prediction, matching scheduler/scheduler_config.json."""
    from diffusers import DDIMScheduler

    scheduler = DDIMScheduler(**SCHEDULER_CONFIG)
    scheduler.set_timesteps(steps)
    x = torch.randn((context.shape[0], 3, 32, 32), generator=generator)
    uncond = torch.zeros_like(context)
    for t in scheduler.timesteps:
        out = model(torch.cat([x, x]), t, encoder_hidden_states=torch.cat([uncond, context]),
                    encoder_attention_mask=torch.cat([mask, mask])).sample
        out_uncond, out_cond = out.chunk(2)
        x = scheduler.step(out_uncond + guidance * (out_cond - out_uncond), t, x).prev_sample
    return x


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--run-dir", type=Path, default=RUN_DIR)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--prompts", nargs="*", default=DEFAULT_PROMPTS)
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--guidance", type=float, default=3.0)
    parser.add_argument("--scale", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    model, state = load_ema(args.run_dir)
    context, mask = TokenEncoder().context(args.prompts)
    rows = []
    for seed in range(args.seeds):
        images = ddim_sample(model, context, mask, args.steps, args.guidance, torch.Generator().manual_seed(seed))
        pixels = ((images.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
        rows.append(np.concatenate(list(pixels), axis=1))
    grid = np.concatenate(rows, axis=0)
    image = Image.fromarray(grid).resize((grid.shape[1] * args.scale, grid.shape[0] * args.scale), Image.NEAREST)
    image.save(args.out)
    print(f"step {state['step']}: columns = {args.prompts}; rows = seeds 0..{args.seeds - 1}; saved {args.out}")


if __name__ == "__main__":
    main()
