"""Writes tests/fixtures/sd21-tiny/: a small Stable Diffusion 2.1-shaped model with random
weights, built and saved by diffusers and transformers themselves, and what diffusers'
StableDiffusionPipeline computes with it, also as SD Turbo runs it. The Rust test
tests/runtime/parity.rs loads the same directory with genmint's loader and compares.

What makes it SD 2.1 rather than SD 1.5 (sd15.py):

- v-prediction: the scheduler config is stabilityai/stable-diffusion-2-1's (DDIM,
  `prediction_type: v_prediction`).
- An OpenCLIP-style text encoder: `hidden_act: gelu` (exact erf GELU, not quick_gelu), and the
  tokenizer pads with `!` instead of `<|endoftext|>` (id 33 in this vocabulary, whose byte symbols
  are in byte order; 0 in CLIP's). The config's bos/eos/pad ids are the
  placeholder values SD 2.1's text_encoder/config.json ships (0, 2, 1), which the tokenizer does
  not use. The text embedding is the encoder's last hidden state after the final layer norm:
  diffusers' encode_prompt does that whenever `clip_skip` is None, SD 2.x included (SD 2.x's
  "penultimate layer" is in the checkpoint: its converted text encoder has 23 of OpenCLIP
  ViT-H's 24 layers).
- The UNet with `use_linear_projection: true`, `upcast_attention: true` (a no-op in f32) and
  `attention_head_dim` per block, as SD 2.1's [5, 10, 20, 20] (the legacy name for head counts;
  the mid block takes the last): here [2, 4] over SD 1.5's two levels at width 32, so the
  cross-attention blocks run 2 heads and the mid block 4.

The VAE is SD's, as in sd15.py. Saved as the fp16 variant, kind `tiny` in genmint-model.json:
sd21's request bounds start at 256 px, and the tiny kind runs the same single-encoder path (last
hidden state, the schedule and prediction type read from the scheduler config) at 64 px.

References (see common.py): DDIM cases stage by stage; Euler, ancestral Euler and DPM-Solver++
from the saved config; and SD Turbo: stabilityai/sd-turbo's scheduler config (Euler, trailing
spacing, epsilon) with guidance 0 and 1 or 4 steps, with `euler` (what sd-turbo's config names)
and `euler_a` (fed genmint's step noise).
"""

import torch
from diffusers import DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
from transformers import CLIPTextModel

from common import (FIXTURES, openclip_text_config, SCHEDULERS, SD_BETAS, generate, perturbed, pipeline, prompt_texts, sd_vae,
                    tokenizer)

OUT = FIXTURES / "sd21-tiny"
WEIGHT_SEED = 21_2022
SIZE = 64
MERGES = 120

# stabilityai/stable-diffusion-2-1 scheduler/scheduler_config.json.
SD21_SCHEDULER = {"_class_name": "DDIMScheduler", **SD_BETAS, "prediction_type": "v_prediction"}
# stabilityai/sd-turbo scheduler/scheduler_config.json.
SD_TURBO_SCHEDULER = {
    "_class_name": "EulerDiscreteScheduler",
    **SD_BETAS,
    "interpolation_type": "linear",
    "prediction_type": "epsilon",
    "sample_max_value": 1.0,
    "timestep_spacing": "trailing",
    "use_karras_sigmas": False,
}

CASES = [
    {"prompt": "a lighthouse on a cliff at dawn, oil painting", "negative_prompt": "blurry, dark",
     "seed": 2024, "guidance": 7.5, "steps": 4},
    {"prompt": "Wow!! A purple cat wearing a hat!!", "negative_prompt": "ugly!", "seed": 99,
     "guidance": 9.0, "steps": 10},
    {"prompt": "a lighthouse on a cliff at dawn, oil painting", "negative_prompt": "", "seed": 5,
     "guidance": 1.0, "steps": 4},
]
TURBO = {"prompt": "a cinematic photo of a raccoon in a tiny spacesuit", "negative_prompt": "",
         "guidance": 0.0, "scheduler_config": SD_TURBO_SCHEDULER}
SCHEDULER_CASES = (
    [{**CASES[1], "scheduler": name} for name in SCHEDULERS]
    + [{**CASES[2], "scheduler": "euler"}]
    + [{**TURBO, "seed": 11, "steps": steps, "scheduler": name}
       for name, steps in [("euler", 1), ("euler_a", 1), ("euler_a", 4)]]
)


def build_pipeline() -> StableDiffusionPipeline:
    torch.manual_seed(WEIGHT_SEED)
    tok = tokenizer(prompt_texts(CASES, SCHEDULER_CASES), MERGES, pad_token="!")
    text_encoder = perturbed(CLIPTextModel(openclip_text_config(len(tok))), 0.02)
    unet = perturbed(UNet2DConditionModel(
        sample_size=SIZE // 8, in_channels=4, out_channels=4,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        block_out_channels=(32, 32), layers_per_block=1, attention_head_dim=(2, 4),
        use_linear_projection=True, upcast_attention=True,
        norm_num_groups=32, cross_attention_dim=32), 0.02)
    vae = sd_vae(SIZE)
    scheduler = DDIMScheduler.from_config(SD21_SCHEDULER)
    return pipeline(tok, text_encoder, unet, vae, scheduler)


def main() -> None:
    generate(build_pipeline(), OUT, prompt_texts(CASES, SCHEDULER_CASES), MERGES, {
        "kind": "tiny",
        "name": "sd21-tiny diffusers parity fixture",
    }, CASES, SCHEDULER_CASES, SIZE, "sd21.py")


if __name__ == "__main__":
    main()
