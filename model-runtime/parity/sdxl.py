"""Writes tests/fixtures/sdxl-tiny/: a small Stable Diffusion XL-shaped model with random weights,
built and saved by diffusers and transformers themselves, and what diffusers'
StableDiffusionXLPipeline computes with it. The Rust test tests/runtime/parity.rs loads the same
directory with genmint's loader and compares every stage.

What makes it SDXL rather than SD 1.5 (sd15.py):

- Two text encoders: a CLIPTextModel (quick_gelu, `<|endoftext|>` padding, as CLIP ViT-L) and a
  CLIPTextModelWithProjection (gelu, `!` padding, the placeholder bos/eos/pad ids 0, 2, 1 that
  SDXL's text_encoder_2 ships, so transformers pools at the highest id), both conditioning the
  UNet with their penultimate hidden states side by side.
- The UNet's added conditioning (`addition_embed_type: text_time`): the second encoder's pooled
  `text_embeds` and the six size ids (original size, crop top-left, target size: H, W, 0, 0, H,
  W), each id through an 8-channel sinusoidal projection, through `add_embedding` and added to
  the time embedding. SDXL's block order (DownBlock2D first, no attention at the top level),
  linear projections.
- An empty negative prompt with guidance: `force_zeros_for_empty_prompt` (SDXL base's default)
  makes both the negative context and the negative pooled embedding zeros.

The VAE is SD's, as in sd15.py. Saved as the fp16 variant, kind `tiny_xl` in genmint-model.json
(sdxl's request bounds start at 512 px; tiny_xl runs the same two-encoder path at 64 px).

References (see common.py): DDIM cases stage by stage (also the pooled embedding), then Euler
from the saved config. Guidance 5 (SDXL's default) and 1. SDXL Turbo (the same architecture,
distilled) as stabilityai/sdxl-turbo runs: its Euler ancestral, trailing-spacing scheduler config,
guidance 0, 1 and 4 steps.
"""

import json

import torch
from diffusers import DDIMScheduler, StableDiffusionXLPipeline, UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

from common import FIXTURES, openclip_text_config, SD_BETAS, Recorder, learn_bpe, perturbed, prompt_texts, sd_vae, tokenizer

OUT = FIXTURES / "sdxl-tiny"
WEIGHT_SEED = 2023_07
SIZE = 64
MERGES = 120
TIME_IDS = [SIZE, SIZE, 0, 0, SIZE, SIZE]

# stabilityai/stable-diffusion-xl-base-1.0 scheduler/scheduler_config.json (Euler, leading
# spacing); the fixture is saved with DDIM built from it, as sd15.py does.
SDXL_SCHEDULER = {"_class_name": "EulerDiscreteScheduler", **SD_BETAS, "interpolation_type": "linear",
                  "prediction_type": "epsilon", "sample_max_value": 1.0, "timestep_spacing": "leading",
                  "use_karras_sigmas": False}

CASES = [
    {"prompt": "an astronaut riding a green horse, photo", "negative_prompt": "blurry, cartoon",
     "seed": 1024, "guidance": 5.0, "steps": 4},
    {"prompt": "an astronaut riding a green horse, photo", "negative_prompt": "", "seed": 1024,
     "guidance": 5.0, "steps": 4},
    {"prompt": "Neon city at NIGHT, rain!", "negative_prompt": "", "seed": 3, "guidance": 1.0, "steps": 4},
]
# stabilityai/sdxl-turbo scheduler/scheduler_config.json: Euler ancestral, trailing spacing.
SDXL_TURBO_SCHEDULER = {**SDXL_SCHEDULER, "_class_name": "EulerAncestralDiscreteScheduler",
                        "timestep_spacing": "trailing"}
# SDXL Turbo as its model card runs it: no guidance, 1 to 4 steps.
# (A prompt of CASES: the fixture's tokenizers are learned from those.)
TURBO = {"prompt": CASES[2]["prompt"], "negative_prompt": "",
         "guidance": 0.0, "scheduler": "euler_a", "scheduler_config": SDXL_TURBO_SCHEDULER}
SCHEDULER_CASES = ([{**CASES[n], "scheduler": "euler"} for n in (0, 1, 2)]
                   + [{**TURBO, "seed": 5, "steps": steps} for steps in (1, 4)])


def build_pipeline() -> StableDiffusionXLPipeline:
    torch.manual_seed(WEIGHT_SEED)
    texts = prompt_texts(CASES)
    tok = tokenizer(texts, MERGES)
    tok_2 = tokenizer(texts, MERGES, pad_token="!")
    text_encoder = perturbed(CLIPTextModel(CLIPTextConfig(
        vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, max_position_embeddings=77, hidden_act="quick_gelu",
        layer_norm_eps=1e-5, bos_token_id=len(tok) - 2, eos_token_id=len(tok) - 1,
        pad_token_id=len(tok) - 1, projection_dim=32)), 0.02)
    # 48 wide, the first encoder 32: as in the release (768 and 1280), the widths tell the two
    # apart, which diffusers' from_single_file relies on.
    text_encoder_2 = perturbed(CLIPTextModelWithProjection(openclip_text_config(len(tok), 48)), 0.02)
    unet = perturbed(UNet2DConditionModel(
        sample_size=SIZE // 8, in_channels=4, out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        block_out_channels=(32, 32), layers_per_block=1, attention_head_dim=(2, 4),
        transformer_layers_per_block=(1, 1), use_linear_projection=True, norm_num_groups=32,
        cross_attention_dim=32 + 48, addition_embed_type="text_time", addition_time_embed_dim=8,
        projection_class_embeddings_input_dim=6 * 8 + 48), 0.02)
    return StableDiffusionXLPipeline(
        vae=sd_vae(SIZE), text_encoder=text_encoder, text_encoder_2=text_encoder_2, tokenizer=tok,
        tokenizer_2=tok_2, unet=unet, scheduler=DDIMScheduler.from_config(SDXL_SCHEDULER),
        force_zeros_for_empty_prompt=True, add_watermarker=False)


def save_fixture(pipe: StableDiffusionXLPipeline, texts: list[str]) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    pipe.to(torch.float16).save_pretrained(OUT, variant="fp16")
    vocab, merges = learn_bpe(texts, MERGES)
    for folder in ("tokenizer", "tokenizer_2"):
        assert vocab == getattr(pipe, folder).get_vocab(), f"{folder}'s vocabulary is not the learned one"
        (OUT / folder / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False) + "\n", encoding="utf-8")
        (OUT / folder / "merges.txt").write_text(
            "#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges), encoding="utf-8")
    (OUT / "genmint-model.json").write_text(json.dumps(
        {"format": "genmint-model-v1", "kind": "tiny_xl", "name": "sdxl-tiny diffusers parity fixture",
         "author": "genmint", "variant": "fp16"}, indent=2) + "\n")


class XlRecorder(Recorder):
    """Recorder for StableDiffusionXLPipeline: both tokenizers' ids, the concatenated context and
    the pooled embedding per text, and the added conditioning in the first UNet step."""

    def text(self, prompt: str) -> int:
        if prompt not in self.texts:
            index, pipe = len(self.texts), self.pipe
            ids = [t(prompt, padding="max_length", max_length=t.model_max_length, truncation=True,
                     return_tensors="pt").input_ids[0].tolist() for t in (pipe.tokenizer, pipe.tokenizer_2)]
            embeds, _, pooled, _ = pipe.encode_prompt(prompt, device="cpu", num_images_per_prompt=1,
                                                      do_classifier_free_guidance=False)
            self.texts[prompt] = {"text": prompt, "ids": ids, "index": index}
            self.tensors[f"text{index}.embedding"] = embeds[0].contiguous()
            self.tensors[f"text{index}.pooled"] = pooled[0].contiguous()
        return self.texts[prompt]["index"]

    def _texts(self, case: dict) -> dict:
        # diffusers zeros both negative embeddings when the negative prompt is None (genmint's
        # empty one, see _run) and force_zeros_for_empty_prompt is set.
        guided = case["guidance"] > 1.0
        zeros = guided and not case["negative_prompt"] and self.pipe.config.force_zeros_for_empty_prompt
        negative = self.text(case["negative_prompt"]) if guided and not zeros else None
        return {"prompt_text": self.text(case["prompt"]), "negative_text": negative, "negative_zeros": zeros}

    def first_step(self, sample: torch.Tensor, timestep: int, texts: dict) -> torch.Tensor:
        tensor = lambda index, what: self.tensors[f"text{index}.{what}"][None]
        context, pooled = tensor(texts["prompt_text"], "embedding"), tensor(texts["prompt_text"], "pooled")
        if sample.shape[0] == 2:
            if texts["negative_zeros"]:
                negative, negative_pooled = torch.zeros_like(context), torch.zeros_like(pooled)
            else:
                negative = tensor(texts["negative_text"], "embedding")
                negative_pooled = tensor(texts["negative_text"], "pooled")
            context, pooled = torch.cat([negative, context]), torch.cat([negative_pooled, pooled])
        time_ids = torch.tensor([TIME_IDS] * sample.shape[0], dtype=torch.float32)
        return self.pipe.unet(sample, timestep, encoder_hidden_states=context,
                              added_cond_kwargs={"text_embeds": pooled, "time_ids": time_ids}).sample


def main() -> None:
    torch.set_num_threads(4)
    texts = prompt_texts(CASES)
    save_fixture(build_pipeline(), texts)
    pipe = StableDiffusionXLPipeline.from_pretrained(OUT, variant="fp16", torch_dtype=torch.float32,
                                                     add_watermarker=False)
    recorder = XlRecorder(pipe, SIZE)
    for case in CASES:
        recorder.case(case)
    for case in SCHEDULER_CASES:
        recorder.scheduler_case(case)
    recorder.write(OUT, "sdxl.py")


if __name__ == "__main__":
    main()
