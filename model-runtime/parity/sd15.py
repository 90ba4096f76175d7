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
diffusers' uint8 image.

Run from the repository root with the parity venv (scripts/parity-fixtures.sh does both). Weights
come from a fixed torch seed; the outputs are deterministic for a given torch/diffusers version.
"""

import json
import os
import re
import subprocess
from collections import Counter
from pathlib import Path

import numpy as np
import torch
from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
from safetensors.torch import save_file
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "model-runtime" / "tests" / "fixtures" / "sd15-tiny"
WEIGHT_SEED = 15_2022
SIZE = 64
MERGES = 160

# runwayml/stable-diffusion-v1-5 scheduler/scheduler_config.json (a PNDM config; diffusers builds
# the DDIM scheduler from it as SD users do with DDIMScheduler.from_config).
SD15_SCHEDULER = {
    "_class_name": "PNDMScheduler",
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "beta_start": 0.00085,
    "clip_sample": False,
    "num_train_timesteps": 1000,
    "set_alpha_to_one": False,
    "skip_prk_steps": True,
    "steps_offset": 1,
    "trained_betas": None,
}

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


def byte_symbols() -> list[str]:
    """GPT-2/CLIP's printable stand-in for each byte, in byte order (the BPE base alphabet)."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAC + 1)) + list(range(0xAE, 0xFF + 1))
    symbols, extra = {}, 0
    for b in range(256):
        if b in printable:
            symbols[b] = chr(b)
        else:
            symbols[b] = chr(256 + extra)
            extra += 1
    return [symbols[b] for b in range(256)]


def learn_bpe(texts: list[str]) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """A CLIP-style vocabulary: the 256 byte symbols, the same with `</w>`, up to MERGES merges
    learned greedily from the texts' words (ties broken by the pair's text; it stops when every
    word is one token), then the two special tokens."""
    symbols = byte_symbols()
    words = Counter()
    for text in texts:
        for word in re.findall(r"[a-z]+|[0-9]|[^\sa-z0-9]+", text.lower()):
            chars = [symbols[b] for b in word.encode("utf-8")]
            words[tuple(chars[:-1] + [chars[-1] + "</w>"])] += 1
    merges = []
    for _ in range(MERGES):
        pairs = Counter()
        for word, count in words.items():
            for pair in zip(word, word[1:]):
                pairs[pair] += count
        if not pairs:
            break
        best = min(pairs, key=lambda p: (-pairs[p], p))
        merges.append(best)
        merged = Counter()
        for word, count in words.items():
            out, i = [], 0
            while i < len(word):
                if i + 1 < len(word) and (word[i], word[i + 1]) == best:
                    out.append(word[i] + word[i + 1])
                    i += 2
                else:
                    out.append(word[i])
                    i += 1
            merged[tuple(out)] += count
        words = merged
    tokens = symbols + [s + "</w>" for s in symbols] + ["".join(m) for m in merges]
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    return {token: i for i, token in enumerate(tokens)}, merges


def prompt_texts() -> list[str]:
    return [t for c in CASES for t in (c["prompt"], c["negative_prompt"])]


def perturbed(module: torch.nn.Module, scale: float) -> torch.nn.Module:
    # Default initialisation leaves some layers at zero or identity; perturb every weight so each
    # one reaches the output and a loading mistake shows.
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.add_(torch.randn_like(parameter) * scale)
    return module.eval()


def build_pipeline() -> StableDiffusionPipeline:
    torch.manual_seed(WEIGHT_SEED)
    vocab, merges = learn_bpe(prompt_texts())
    tok = CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=77)
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
    vae = perturbed(AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=4,
        down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=(16, 16, 16, 16), layers_per_block=1, norm_num_groups=16,
        sample_size=SIZE, scaling_factor=0.18215), 0.02)
    scheduler = DDIMScheduler.from_config(SD15_SCHEDULER)
    return StableDiffusionPipeline(vae=vae, text_encoder=text_encoder, tokenizer=tok, unet=unet,
                                   scheduler=scheduler, safety_checker=None, feature_extractor=None,
                                   requires_safety_checker=False)


def genmint_noise(seed: int, shape: tuple[int, ...]) -> torch.Tensor:
    count = int(np.prod(shape))
    out = subprocess.run(
        ["cargo", "run", "--quiet", "--locked", "-p", "genmint-model-runtime", "--example",
         "parity-noise", "--", str(seed), str(count)], cwd=ROOT, check=True, capture_output=True)
    values = np.frombuffer(out.stdout, dtype="<f4")
    assert values.size == count, f"parity-noise gave {values.size} values, not {count}"
    return torch.from_numpy(values.copy()).reshape(shape)


def save(pipe: StableDiffusionPipeline) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    # Only the fp16 variant, as SD 1.5 is mostly shipped: half the bytes, and the genmint loader's
    # f16-to-f32 path is covered too. Both sides compute in f32 from these f16 values.
    pipe.to(torch.float16).save_pretrained(OUT, variant="fp16")
    # transformers writes only tokenizer.json (what genmint reads); SD checkpoints also carry the
    # slow tokenizer's two files, so write them as the hub has them.
    vocab, merges = learn_bpe(prompt_texts())
    (OUT / "tokenizer" / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False) + "\n", encoding="utf-8")
    (OUT / "tokenizer" / "merges.txt").write_text(
        "#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges), encoding="utf-8")
    (OUT / "genmint-model.json").write_text(json.dumps({
        "format": "genmint-model-v1",
        # sd15's request bounds start at 256 px; the tiny kind runs the same SD 1.x path at 64 px.
        "kind": "tiny",
        "name": "sd15-tiny diffusers parity fixture",
        "author": "genmint",
        "variant": "fp16",
    }, indent=2) + "\n")


@torch.no_grad()
def references(pipe: StableDiffusionPipeline) -> None:
    tensors, cases, texts = {}, [], {}
    latent_shape = (1, pipe.unet.config.in_channels, SIZE // 8, SIZE // 8)

    def text(prompt: str) -> int:
        # Every distinct text once: its ids and its embedding (what encode_prompt returns for it).
        if prompt not in texts:
            index = len(texts)
            ids = pipe.tokenizer(prompt, padding="max_length", max_length=pipe.tokenizer.model_max_length,
                                 truncation=True, return_tensors="pt").input_ids
            embeds, _ = pipe.encode_prompt(prompt, "cpu", 1, False)
            texts[prompt] = {"text": prompt, "ids": ids[0].tolist(), "index": index}
            tensors[f"text{index}.embedding"] = embeds[0].contiguous()
        return texts[prompt]["index"]

    for n, case in enumerate(CASES):
        guided = case["guidance"] > 1.0
        latents = genmint_noise(case["seed"], latent_shape)
        cond = text(case["prompt"])
        uncond = text(case["negative_prompt"]) if guided else None
        # The first denoising step's UNet output, on the batch the pipeline builds.
        pipe.scheduler.set_timesteps(case["steps"])
        timesteps = [int(t) for t in pipe.scheduler.timesteps]
        cond_embeds = tensors[f"text{cond}.embedding"][None]
        context = torch.cat([tensors[f"text{uncond}.embedding"][None], cond_embeds]) if guided else cond_embeds
        sample = torch.cat([latents] * 2) if guided else latents
        first = pipe.unet(pipe.scheduler.scale_model_input(sample, timesteps[0]), timesteps[0],
                          encoder_hidden_states=context).sample
        final = pipe(prompt=case["prompt"], negative_prompt=case["negative_prompt"] or None,
                     height=SIZE, width=SIZE, num_inference_steps=case["steps"],
                     guidance_scale=case["guidance"], latents=latents.clone(), output_type="latent").images
        raw = pipe.vae.decode(final / pipe.vae.config.scaling_factor).sample
        image = pipe.image_processor.postprocess(raw, output_type="np")  # [1, H, W, 3] in [0, 1]
        # genmint's conversion (image.rs) starts with the same f32 operations as diffusers'
        # postprocess, so the float image is not stored: the raw decode determines it.
        same = (raw / 2 + 0.5).clamp(0, 1).permute(0, 2, 3, 1).numpy()
        assert np.array_equal(same, image), "diffusers' postprocess is no longer (x / 2 + 0.5).clamp(0, 1)"
        # diffusers' numpy_to_pil: (image * 255).round() (half to even, genmint rounds half away
        # from zero; an exact tie is practically never hit), as uint8.
        pixels = (image * 255).round().astype("uint8")
        tensors.update({
            f"case{n}.initial_latents": latents,
            f"case{n}.unet_first_step": first.contiguous(),
            f"case{n}.final_latents": final.contiguous(),
            f"case{n}.decoded": raw.contiguous(),
            f"case{n}.image_uint8": torch.from_numpy(np.ascontiguousarray(pixels)),
        })
        cases.append({**case, "width": SIZE, "height": SIZE, "timesteps": timesteps,
                      "prompt_text": cond, "negative_text": uncond})

    save_file({k: v.contiguous() for k, v in tensors.items()}, OUT / "reference.safetensors")
    versions = {m.__name__: m.__version__ for m in (torch, __import__("diffusers"), __import__("transformers"))}
    (OUT / "reference.json").write_text(json.dumps({
        "about": "diffusers StableDiffusionPipeline outputs for this model (model-runtime/parity/sd15.py)",
        "versions": versions,
        "texts": sorted(texts.values(), key=lambda t: t["index"]),
        "cases": cases,
    }, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


def main() -> None:
    torch.set_num_threads(min(4, os.cpu_count() or 1))
    save(build_pipeline())
    # The references come from the saved files, read back the way diffusers users load SD.
    pipe = StableDiffusionPipeline.from_pretrained(OUT, variant="fp16", torch_dtype=torch.float32)
    references(pipe)
    size = sum(f.stat().st_size for f in OUT.rglob("*") if f.is_file())
    params = {n: sum(p.numel() for p in getattr(pipe, n).parameters()) for n in ("text_encoder", "unet", "vae")}
    print(f"wrote {OUT} ({size} bytes; parameters {params}; vocabulary {len(pipe.tokenizer)})")


if __name__ == "__main__":
    main()
