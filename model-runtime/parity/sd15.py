"""Writes tests/fixtures/sd15-tiny/: a small Stable Diffusion 1.5-shaped model with random
weights, built and saved by diffusers and transformers themselves, and what diffusers'
StableDiffusionPipeline computes with it. The Rust test tests/runtime/parity.rs loads the same
directory with genmint's loader and compares every stage.

The model: UNet2DConditionModel with SD 1.5's block types (CrossAttnDownBlock2D then DownBlock2D,
8 attention heads, 32 norm groups, no linear projection) at width 32; AutoencoderKL with
SD's VAE blocks at width 16 (4 levels, scaling factor 0.18215); a 2-layer CLIPTextModel
(quick_gelu, 77 positions) over a tiny byte-level CLIP BPE vocabulary learned here from the
prompts' words; DDIMScheduler from SD 1.5's scheduler config. Saved with save_pretrained in the
diffusers layout (the fp16 variant only, to keep the fixture small), plus genmint-model.json.

The references (reference.json and reference.safetensors): for every case (prompt, negative
prompt, seed, 64x64, guidance 7.5 or 1, 4 or 10 DDIM steps) diffusers runs from latents= set to
genmint's initial noise for the seed (printed by the Rust example parity-noise, so the noise is
genmint's own bits). Recorded: token ids, text embeddings (cond and uncond), the UNet's output at
the first timestep, the final latents, the VAE decode of those latents (raw, in [-1, 1]) and
diffusers' uint8 image. Then two of the requests again with each other scheduler genmint offers
(euler, euler_a, dpmpp_2m, dpmpp_2m_karras, built from_config of the saved scheduler config; the
ancestral one fed genmint's per-step noise): final latents and uint8 image (see common.py).

Run from the repository root with the parity venv (scripts/parity-fixtures.sh does both). Weights
come from a fixed torch seed; the outputs are deterministic for a given torch/diffusers version.
"""

import torch
from diffusers import DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel

from common import (FIXTURES, SCHEDULERS, SD_BETAS, generate, perturbed, pipeline, prompt_texts, sd_vae,
                    tokenizer)

OUT = FIXTURES / "sd15-tiny"
WEIGHT_SEED = 15_2022
SIZE = 64
MERGES = 160

# runwayml/stable-diffusion-v1-5 scheduler/scheduler_config.json (a PNDM config; diffusers builds
# the DDIM scheduler from it as SD users do with DDIMScheduler.from_config).
SD15_SCHEDULER = {"_class_name": "PNDMScheduler", **SD_BETAS}

LONG_PROMPT = ", ".join(f"a small {c} bird on a stone bridge over the river at sunset" for c in
                        ["red", "blue", "green", "gold", "white", "black", "pink"])
CASES = [
    {"prompt": "a red fox in a snow forest, watercolor", "negative_prompt": "blurry, lowres",
     "seed": 42, "guidance": 7.5, "steps": 4},
    {"prompt": "a red fox in a snow forest, watercolor", "negative_prompt": "blurry, lowres",
     "seed": 42, "guidance": 7.5, "steps": 10},
    {"prompt": "A tiny robot under the MOON!", "negative_prompt": "", "seed": 7, "guidance": 1.0,
     "steps": 4},
    {"prompt": "A tiny robot under the MOON!", "negative_prompt": "", "seed": 7, "guidance": 1.0,
     "steps": 10},
    {"prompt": LONG_PROMPT, "negative_prompt": "Ein Café — 笑脸 émoji", "seed": 123456789,
     "guidance": 7.5, "steps": 10},
]
# Every other scheduler genmint offers, from the saved (DDIM) scheduler config, on a guided and an
# unguided request.
SCHEDULER_CASES = [{**CASES[n], "scheduler": name} for name in SCHEDULERS for n in (1, 2)]


def build_pipeline() -> StableDiffusionPipeline:
    torch.manual_seed(WEIGHT_SEED)
    tok = tokenizer(prompt_texts(CASES), MERGES)
    text_encoder = perturbed(CLIPTextModel(CLIPTextConfig(
        vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, max_position_embeddings=77, hidden_act="quick_gelu",
        layer_norm_eps=1e-5, bos_token_id=len(tok) - 2, eos_token_id=len(tok) - 1,
        pad_token_id=len(tok) - 1, projection_dim=32)), 0.02)
    unet = perturbed(UNet2DConditionModel(
        sample_size=SIZE // 8, in_channels=4, out_channels=4,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        block_out_channels=(32, 32), layers_per_block=1, attention_head_dim=8,
        norm_num_groups=32, cross_attention_dim=32), 0.02)
    vae = sd_vae(SIZE)
    scheduler = DDIMScheduler.from_config(SD15_SCHEDULER)
    return pipeline(tok, text_encoder, unet, vae, scheduler)




def main() -> None:
    generate(build_pipeline(), OUT, prompt_texts(CASES), MERGES, {
        # sd15's request bounds start at 256 px; the tiny kind runs the same SD 1.x path at 64 px.
        "kind": "tiny",
        "name": "sd15-tiny diffusers parity fixture",
    }, CASES, SCHEDULER_CASES, SIZE, "sd15.py")


if __name__ == "__main__":
    main()
