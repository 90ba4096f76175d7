"""What the Stable Diffusion parity generators (sd15.py, sd21.py) share: the tiny CLIP BPE
vocabulary learned from the prompts, random but perturbed weights, genmint's own noise (initial
and per step, printed by the Rust example parity-noise), the schedulers genmint offers as
diffusers builds them, and the recording of diffusers' StableDiffusionPipeline outputs into
reference.json and reference.safetensors.

Two kinds of recorded request:

- `cases` (DDIM, the scheduler the fixture is saved with): every stage, so a difference points at
  one stage: token ids, text embeddings, the UNet's output at the first timestep, the final
  latents, the VAE decode of those latents (raw, in [-1, 1]) and diffusers' uint8 image.
- `scheduler_cases`: the same pipeline with another scheduler built `from_config` of the saved
  scheduler config (or of a stated one, `scheduler_config`, e.g. SD Turbo's trailing spacing), by
  genmint's request name (`euler`, `euler_a`, `dpmpp_2m`, `dpmpp_2m_karras`): the timesteps, the
  final latents and the uint8 image. The ancestral scheduler is fed genmint's per-step noise in
  place of torch's (its module's `randn_tensor` is replaced for the run).
"""

import json
import os
import re
import subprocess
from collections import Counter
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from diffusers import (
    AutoencoderKL,
    DPMSolverMultistepScheduler,
    EulerAncestralDiscreteScheduler,
    EulerDiscreteScheduler,
    StableDiffusionPipeline,
)
from diffusers.schedulers import scheduling_euler_ancestral_discrete as euler_a_module
from safetensors.torch import save_file
from transformers import CLIPTextConfig, CLIPTokenizer

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "model-runtime" / "tests" / "fixtures"

# The training noise schedule every SD 1.x and 2.x scheduler config states (SD 2.1 and SD Turbo add
# their prediction type and spacing).
SD_BETAS = {
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

# genmint's request names (other than ddim) and the diffusers class and from_config overrides
# each stands for.
SCHEDULERS = {
    "euler": (EulerDiscreteScheduler, {}),
    "euler_a": (EulerAncestralDiscreteScheduler, {}),
    "dpmpp_2m": (DPMSolverMultistepScheduler, {"algorithm_type": "dpmsolver++", "solver_order": 2}),
    "dpmpp_2m_karras": (DPMSolverMultistepScheduler,
                        {"algorithm_type": "dpmsolver++", "solver_order": 2, "use_karras_sigmas": True}),
}


def byte_table() -> dict[int, str]:
    """CLIP's (and GPT-2's) byte-to-symbol table: printable Latin-1 bytes stand for themselves,
    every other byte for the next unused code point from 256 on, in byte order."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAC + 1)) + list(range(0xAE, 0xFF + 1))
    table, extra = {}, 0
    for b in range(256):
        if b in printable:
            table[b] = chr(b)
        else:
            table[b] = chr(256 + extra)
            extra += 1
    return table


def byte_symbols() -> list[str]:
    """Each byte's symbol, in byte order (the BPE base alphabet of the parity fixtures)."""
    table = byte_table()
    return [table[b] for b in range(256)]


def learn_bpe(texts: list[str], max_merges: int) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """A CLIP-style vocabulary: the 256 byte symbols, the same with `</w>`, up to `max_merges`
    merges learned greedily from the texts' words (ties broken by the pair's text; it stops when
    every word is one token), then the two special tokens."""
    symbols = byte_symbols()
    words = Counter()
    for text in texts:
        for word in re.findall(r"[a-z]+|[0-9]|[^\sa-z0-9]+", text.lower()):
            chars = [symbols[b] for b in word.encode("utf-8")]
            words[tuple(chars[:-1] + [chars[-1] + "</w>"])] += 1
    merges = []
    for _ in range(max_merges):
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


def prompt_texts(*case_lists: list[dict]) -> list[str]:
    return [t for cases in case_lists for c in cases for t in (c["prompt"], c["negative_prompt"])]


def tokenizer(texts: list[str], max_merges: int, **special: str) -> CLIPTokenizer:
    vocab, merges = learn_bpe(texts, max_merges)
    return CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=77, **special)


def perturbed(module: torch.nn.Module, scale: float) -> torch.nn.Module:
    # Default initialisation leaves some layers at zero or identity; perturb every weight so each
    # one reaches the output and a loading mistake shows.
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.add_(torch.randn_like(parameter) * scale)
    return module.eval()


def openclip_text_config(vocab_size: int, hidden_size: int = 32) -> CLIPTextConfig:
    """The tiny OpenCLIP-style text encoder config (gelu, 3 layers, 4 heads) SD 2.x and SDXL's
    second encoder share; SDXL's is wider than its first encoder, as in the release."""
    return CLIPTextConfig(
        vocab_size=vocab_size, hidden_size=hidden_size, intermediate_size=2 * hidden_size,
        num_hidden_layers=3, num_attention_heads=4, max_position_embeddings=77, hidden_act="gelu",
        layer_norm_eps=1e-5, bos_token_id=0, eos_token_id=2, pad_token_id=1, projection_dim=hidden_size)


def sd_vae(size: int) -> AutoencoderKL:
    """SD's VAE blocks at width 16 (4 levels, factor 8, scaling factor 0.18215), perturbed."""
    return perturbed(AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=4,
        down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=(16, 16, 16, 16), layers_per_block=1, norm_num_groups=16,
        sample_size=size, scaling_factor=0.18215), 0.02)


def pipeline(tok, text_encoder, unet, vae, scheduler) -> StableDiffusionPipeline:
    return StableDiffusionPipeline(vae=vae, text_encoder=text_encoder, tokenizer=tok, unet=unet,
                                   scheduler=scheduler, safety_checker=None, feature_extractor=None,
                                   requires_safety_checker=False)


def genmint_noise(seed: int, shape: tuple[int, ...], step: int | None = None) -> torch.Tensor:
    """genmint's initial noise for `seed` or, with `step`, its noise for that step (0-based)."""
    count = int(np.prod(shape))
    args = [str(seed), str(count)] + ([] if step is None else [str(step)])
    out = subprocess.run(
        ["cargo", "run", "--quiet", "--locked", "-p", "genmint-model-runtime", "--example",
         "parity-noise", "--", *args], cwd=ROOT, check=True, capture_output=True)
    values = np.frombuffer(out.stdout, dtype="<f4")
    assert values.size == count, f"parity-noise gave {values.size} values, not {count}"
    return torch.from_numpy(values.copy()).reshape(shape)


@contextmanager
def genmint_step_noise(scheduler, seed: int):
    """For the run, the ancestral scheduler draws genmint's step noise for `seed` at its current
    step index instead of torch's (diffusers calls randn_tensor once per step, before it advances
    the index)."""
    original = euler_a_module.randn_tensor

    def draw(shape, generator=None, device=None, dtype=None, **_):
        assert generator is None, "the pipeline was given a generator"
        return genmint_noise(seed, tuple(shape), scheduler.step_index).to(dtype=dtype)

    euler_a_module.randn_tensor = draw
    try:
        yield
    finally:
        euler_a_module.randn_tensor = original


def save_fixture(pipe: StableDiffusionPipeline, out: Path, tok: CLIPTokenizer, texts: list[str],
                 max_merges: int, model_json: dict) -> None:
    out.mkdir(parents=True, exist_ok=True)
    # Only the fp16 variant, as SD is mostly shipped: half the bytes, and the genmint loader's
    # f16-to-f32 path is covered too. Both sides compute in f32 from these f16 values.
    pipe.to(torch.float16).save_pretrained(out, variant="fp16")
    # transformers writes only tokenizer.json (what genmint reads); SD checkpoints also carry the
    # slow tokenizer's two files, so write them as the hub has them.
    vocab, merges = learn_bpe(texts, max_merges)
    assert vocab == tok.get_vocab(), "the tokenizer's vocabulary is not the learned one"
    (out / "tokenizer" / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False) + "\n", encoding="utf-8")
    (out / "tokenizer" / "merges.txt").write_text(
        "#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges), encoding="utf-8")
    (out / "genmint-model.json").write_text(json.dumps(
        {"format": "genmint-model-v1", **model_json, "author": "genmint", "variant": "fp16"}, indent=2) + "\n")


def load_saved(out: Path) -> StableDiffusionPipeline:
    # The references come from the saved files, read back the way diffusers users load SD.
    return StableDiffusionPipeline.from_pretrained(out, variant="fp16", torch_dtype=torch.float32)


def scheduler_for(name: str, config) -> object:
    cls, extra = SCHEDULERS[name]
    return cls.from_config(config, **extra)


class Recorder:
    """Collects the references of one fixture: texts once each, tensors by name, cases."""

    def __init__(self, pipe: StableDiffusionPipeline, size: int):
        self.pipe, self.size = pipe, size
        self.tensors, self.texts = {}, {}
        self.cases, self.scheduler_cases = [], []
        self.latent_shape = (1, pipe.unet.config.in_channels, size // 8, size // 8)

    def text(self, prompt: str) -> int:
        # Every distinct text once: its ids and its embedding (what encode_prompt returns for it).
        if prompt not in self.texts:
            index, tok = len(self.texts), self.pipe.tokenizer
            ids = tok(prompt, padding="max_length", max_length=tok.model_max_length, truncation=True,
                      return_tensors="pt").input_ids
            embeds, _ = self.pipe.encode_prompt(prompt, "cpu", 1, False)
            self.texts[prompt] = {"text": prompt, "ids": ids[0].tolist(), "index": index}
            self.tensors[f"text{index}.embedding"] = embeds[0].contiguous()
        return self.texts[prompt]["index"]

    def _texts(self, case: dict) -> dict:
        guided = case["guidance"] > 1.0
        return {"prompt_text": self.text(case["prompt"]),
                "negative_text": self.text(case["negative_prompt"]) if guided else None}

    def _run(self, case: dict, latents: torch.Tensor) -> torch.Tensor:
        return self.pipe(prompt=case["prompt"], negative_prompt=case["negative_prompt"] or None,
                         height=self.size, width=self.size, num_inference_steps=case["steps"],
                         guidance_scale=case["guidance"], latents=latents.clone(),
                         output_type="latent").images

    def _decode(self, final: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        pipe = self.pipe
        raw = pipe.vae.decode(final / pipe.vae.config.scaling_factor).sample
        image = pipe.image_processor.postprocess(raw, output_type="np")  # [1, H, W, 3] in [0, 1]
        # genmint's conversion (image.rs) starts with the same f32 operations as diffusers'
        # postprocess, so the float image is not stored: the raw decode determines it.
        same = (raw / 2 + 0.5).clamp(0, 1).permute(0, 2, 3, 1).numpy()
        assert np.array_equal(same, image), "diffusers' postprocess is no longer (x / 2 + 0.5).clamp(0, 1)"
        # diffusers' numpy_to_pil: (image * 255).round() (half to even, genmint rounds half away
        # from zero; an exact tie is practically never hit), as uint8.
        pixels = (image * 255).round().astype("uint8")
        return raw, torch.from_numpy(np.ascontiguousarray(pixels))

    def first_step(self, sample: torch.Tensor, timestep: int, texts: dict) -> torch.Tensor:
        """The UNet's output on the batch the pipeline builds at the first timestep."""
        embedding = lambda index: self.tensors[f"text{index}.embedding"][None]
        cond = embedding(texts["prompt_text"])
        context = torch.cat([embedding(texts["negative_text"]), cond]) if sample.shape[0] == 2 else cond
        return self.pipe.unet(sample, timestep, encoder_hidden_states=context).sample

    @torch.no_grad()
    def case(self, case: dict) -> None:
        """A request with the pipeline's own (DDIM) scheduler, every stage recorded."""
        pipe, n = self.pipe, len(self.cases)
        guided = case["guidance"] > 1.0
        latents = genmint_noise(case["seed"], self.latent_shape)
        texts = self._texts(case)
        # The first denoising step's UNet output, on the batch the pipeline builds.
        pipe.scheduler.set_timesteps(case["steps"])
        timesteps = [int(t) for t in pipe.scheduler.timesteps]
        sample = torch.cat([latents] * 2) if guided else latents
        first = self.first_step(pipe.scheduler.scale_model_input(sample, timesteps[0]), timesteps[0], texts)
        final = self._run(case, latents)
        raw, pixels = self._decode(final)
        self.tensors.update({
            f"case{n}.initial_latents": latents,
            f"case{n}.unet_first_step": first.contiguous(),
            f"case{n}.final_latents": final.contiguous(),
            f"case{n}.decoded": raw.contiguous(),
            f"case{n}.image_uint8": pixels,
        })
        self.cases.append({**case, "width": self.size, "height": self.size, "timesteps": timesteps, **texts})

    @torch.no_grad()
    def scheduler_case(self, case: dict) -> None:
        """A request with `case["scheduler"]` from the saved scheduler config, or from
        `case["scheduler_config"]`: timesteps, final latents and pixels recorded."""
        pipe, n = self.pipe, len(self.scheduler_cases)
        saved = pipe.scheduler
        config = case.get("scheduler_config") or saved.config
        pipe.scheduler = scheduler_for(case["scheduler"], config)
        try:
            with genmint_step_noise(pipe.scheduler, case["seed"]):
                final = self._run(case, genmint_noise(case["seed"], self.latent_shape))
            timesteps = [float(t) for t in pipe.scheduler.timesteps]
        finally:
            pipe.scheduler = saved
        _, pixels = self._decode(final)
        self.tensors.update({f"sched{n}.final_latents": final.contiguous(), f"sched{n}.image_uint8": pixels})
        self.scheduler_cases.append({**case, "width": self.size, "height": self.size, "timesteps": timesteps,
                                     **self._texts(case)})

    def write(self, out: Path, generator: str) -> None:
        save_file({k: v.contiguous() for k, v in self.tensors.items()}, out / "reference.safetensors")
        versions = {m.__name__: m.__version__ for m in (torch, __import__("diffusers"), __import__("transformers"))}
        (out / "reference.json").write_text(json.dumps({
            "about": f"diffusers {type(self.pipe).__name__} outputs for this model (model-runtime/parity/{generator})",
            "versions": versions,
            "texts": sorted(self.texts.values(), key=lambda t: t["index"]),
            "cases": self.cases,
            "scheduler_cases": self.scheduler_cases,
        }, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        pipe = self.pipe
        size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
        params = {n: sum(p.numel() for p in getattr(pipe, n).parameters()) for n in ("text_encoder", "unet", "vae")}
        print(f"wrote {out} ({size} bytes; parameters {params}; vocabulary {len(pipe.tokenizer)})")


def generate(pipe: StableDiffusionPipeline, out: Path, texts: list[str], max_merges: int, model_json: dict,
             cases: list[dict], scheduler_cases: list[dict], size: int, generator: str) -> None:
    """Saves the fixture `pipe` in `out` and records diffusers' outputs for the cases, from the
    saved files read back."""
    torch.set_num_threads(min(4, os.cpu_count() or 1))
    save_fixture(pipe, out, pipe.tokenizer, texts, max_merges, model_json)
    recorder = Recorder(load_saved(out), size)
    for case in cases:
        recorder.case(case)
    for case in scheduler_cases:
        recorder.scheduler_case(case)
    recorder.write(out, generator)
