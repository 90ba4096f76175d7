"""Writes tests/fixtures/single-file/: the sd15-tiny, sd21-tiny and sdxl-tiny parity fixtures
(written by sd15.py, sd21.py and sdxl.py, which must run first; scripts/parity-fixtures.sh runs
this script last) saved again as single-file checkpoints with the original LDM/CompVis tensor
names, as A1111, ComfyUI and Civitai ship SD 1.5, SD 2.x and SDXL, and what diffusers'
StableDiffusion(XL)Pipeline.from_single_file makes of them. The Rust test
tests/runtime/single_file.rs imports each file with genmint's converter and compares.

The checkpoint (sd15-tiny.safetensors): every UNet, VAE and text encoder tensor of the fixture,
f16 as stored, renamed diffusers -> LDM by the reverse mapping below (written here: diffusers
ships only the forward direction), the VAE attention's linear weights as 1x1 convolutions, plus
two tensors real checkpoints carry and a converter must leave out (the text encoder's
position_ids buffer and the training schedule's alphas_cumprod).

The SD 2.x checkpoint (sd21-tiny.safetensors) has the UNet and VAE named as above and the text
encoder as OpenCLIP names it (cond_stage_model.model.: token_embedding, positional_embedding,
transformer.resblocks.N with q, k and v fused into attn.in_proj_weight/bias, ln_final,
text_projection), plus one more resblock than the fixture's encoder has, with random weights:
SD 2.x checkpoints hold all of OpenCLIP ViT-H's 24 blocks, and diffusers (its config has 23
layers) and genmint leave the last one out, so a converter that used it would differ.

The SDXL checkpoint (sdxl-tiny.safetensors) has the UNet and VAE named as above, the UNet's
add_embedding as label_emb.0.{0,2}, the first text encoder as SDXL files name CLIP ViT-L
(conditioner.embedders.0.transformer.text_model.) and the second as OpenCLIP ViT-bigG
(conditioner.embedders.1.model., fused q, k, v, its projection transposed as OpenCLIP stores it,
logit_scale), with no extra block: diffusers and genmint keep every block of SDXL's second encoder.

The references: diffusers loads the file with from_single_file(config=<sd15-tiny>), the way
diffusers users load a single file of a known architecture, and this script first checks that
every weight it loaded equals the fixture's bit for bit (so the reverse mapping is exactly the
inverse of diffusers' own conversion). Then, for each case, diffusers generates from genmint's
initial noise (sd15.genmint_noise) with DDIM; recorded: the uint8 image.

Run from the repository root with the parity venv (scripts/parity-fixtures.sh does both).
"""

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import torch
from diffusers import StableDiffusionPipeline, StableDiffusionXLPipeline
from safetensors.torch import load_file, save_file

from common import genmint_noise

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = ROOT / "model-runtime" / "tests" / "fixtures" / "sd15-tiny"
FIXTURE21 = ROOT / "model-runtime" / "tests" / "fixtures" / "sd21-tiny"
FIXTUREXL = ROOT / "model-runtime" / "tests" / "fixtures" / "sdxl-tiny"
OUT = ROOT / "model-runtime" / "tests" / "fixtures" / "single-file"
CHECKPOINT = OUT / "sd15-tiny.safetensors"
CHECKPOINT21 = OUT / "sd21-tiny.safetensors"
CHECKPOINTXL = OUT / "sdxl-tiny.safetensors"
SIZE = 64
# Two of sd15.py's cases, so the Rust test can also compare with genmint on the diffusers layout.
CASES = [
    {"prompt": "a red fox in a snow forest, watercolor", "negative_prompt": "blurry, lowres",
     "seed": 42, "guidance": 7.5, "steps": 10},
    {"prompt": "A tiny robot under the MOON!", "negative_prompt": "", "seed": 7, "guidance": 1.0,
     "steps": 4},
]

# One of sd21.py's cases (v-prediction, DDIM).
CASES21 = [
    {"prompt": "a lighthouse on a cliff at dawn, oil painting", "negative_prompt": "blurry, dark",
     "seed": 2024, "guidance": 7.5, "steps": 4},
]
# Two of sdxl.py's cases (guided with a negative prompt; unguided).
CASESXL = [
    {"prompt": "an astronaut riding a green horse, photo", "negative_prompt": "blurry, cartoon",
     "seed": 1024, "guidance": 5.0, "steps": 4},
    {"prompt": "Neon city at NIGHT, rain!", "negative_prompt": "", "seed": 3, "guidance": 1.0, "steps": 4},
]
DUMMY_BLOCK_SEED = 2_1024

UNET_RESNET = {"norm1": "in_layers.0", "conv1": "in_layers.2", "time_emb_proj": "emb_layers.1",
               "norm2": "out_layers.0", "conv2": "out_layers.3", "conv_shortcut": "skip_connection"}
VAE_ATTENTION = {"group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v", "to_out.0": "proj_out"}


def unet_resnet(rest: str) -> str:
    layer, param = rest.rsplit(".", 1)
    return f"{UNET_RESNET[layer]}.{param}"


def unet_to_ldm(name: str, config: dict, attending_up: set[int]) -> str:
    per_level = config["layers_per_block"] + 1
    top = {"time_embedding.linear_1": "time_embed.0", "time_embedding.linear_2": "time_embed.2",
           "conv_in": "input_blocks.0.0", "conv_norm_out": "out.0", "conv_out": "out.2",
           "add_embedding.linear_1": "label_emb.0.0", "add_embedding.linear_2": "label_emb.0.2"}
    layer, param = name.rsplit(".", 1)
    if layer in top:
        return f"{top[layer]}.{param}"
    parts = name.split(".")
    if parts[0] == "mid_block":
        index = {"resnets.0": 0, "attentions.0": 1, "resnets.1": 2}[".".join(parts[1:3])]
        rest = ".".join(parts[3:])
        return f"middle_block.{index}.{unet_resnet(rest) if index != 1 else rest}"
    kind, block, role, slot, rest = parts[0], int(parts[1]), parts[2], int(parts[3]), ".".join(parts[4:])
    if kind == "down_blocks":
        if role == "downsamplers":
            return f"input_blocks.{1 + block * per_level + per_level - 1}.0.op.{rest.removeprefix('conv.')}"
        i = 1 + block * per_level + slot
        return f"input_blocks.{i}.0.{unet_resnet(rest)}" if role == "resnets" else f"input_blocks.{i}.1.{rest}"
    if role == "upsamplers":
        index = 2 if block in attending_up else 1
        return f"output_blocks.{block * per_level + per_level - 1}.{index}.{rest}"
    i = block * per_level + slot
    return f"output_blocks.{i}.0.{unet_resnet(rest)}" if role == "resnets" else f"output_blocks.{i}.1.{rest}"


def vae_to_ldm(name: str, levels: int) -> str:
    parts = name.split(".")
    coder = parts[0]
    if parts[1] == "conv_norm_out":
        return f"{coder}.norm_out.{parts[2]}"
    if parts[1] == "mid_block":
        rest = ".".join(parts[4:])
        if parts[2] == "resnets":
            return f"{coder}.mid.block_{int(parts[3]) + 1}.{rest.replace('conv_shortcut', 'nin_shortcut')}"
        layer, param = rest.rsplit(".", 1)
        return f"{coder}.mid.attn_1.{VAE_ATTENTION[layer]}.{param}"
    if parts[1] in ("down_blocks", "up_blocks"):
        level = int(parts[2]) if coder == "encoder" else levels - 1 - int(parts[2])
        group = "down" if coder == "encoder" else "up"
        rest = ".".join(parts[5:])
        if parts[3] == "resnets":
            return f"{coder}.{group}.{level}.block.{parts[4]}.{rest.replace('conv_shortcut', 'nin_shortcut')}"
        sampler = "downsample" if coder == "encoder" else "upsample"
        return f"{coder}.{group}.{level}.{sampler}.{rest}"
    return name  # conv_in, conv_out, quant_conv, post_quant_conv


def unet_vae_to_ldm(fixture: Path) -> dict[str, torch.Tensor]:
    unet_config = json.loads((fixture / "unet" / "config.json").read_text())
    vae_config = json.loads((fixture / "vae" / "config.json").read_text())
    attending_up = {i for i, t in enumerate(unet_config["up_block_types"]) if t.startswith("CrossAttn")}
    out = {}
    for name, tensor in load_file(fixture / "unet" / "diffusion_pytorch_model.fp16.safetensors").items():
        out["model.diffusion_model." + unet_to_ldm(name, unet_config, attending_up)] = tensor
    levels = len(vae_config["up_block_types"])
    for name, tensor in load_file(fixture / "vae" / "diffusion_pytorch_model.fp16.safetensors").items():
        ldm = vae_to_ldm(name, levels)
        is_attention_weight = ".attn_1." in ldm and ldm.endswith(".weight") and ".norm." not in ldm
        out["first_stage_model." + ldm] = tensor[:, :, None, None] if is_attention_weight else tensor
    return out


def ldm_checkpoint() -> dict[str, torch.Tensor]:
    out = unet_vae_to_ldm(FIXTURE)
    for name, tensor in load_file(FIXTURE / "text_encoder" / "model.fp16.safetensors").items():
        out["cond_stage_model.transformer.text_model." + name.removeprefix("text_model.")] = tensor
    out["cond_stage_model.transformer.text_model.embeddings.position_ids"] = torch.arange(77)[None]
    out["alphas_cumprod"] = torch.linspace(1, 0.005, 1000)
    return out


OPEN_CLIP_LAYER = {"layer_norm1": "ln_1", "layer_norm2": "ln_2", "self_attn.out_proj": "attn.out_proj",
                   "mlp.fc1": "mlp.c_fc", "mlp.fc2": "mlp.c_proj"}


def open_clip_text_encoder(fixture: Path, folder: str, prefix: str, sdxl: bool) -> dict[str, torch.Tensor]:
    """The transformers CLIPTextModel weights of `folder` as OpenCLIP names them under `prefix`, q,
    k, v fused. SD 2.x (`sdxl` false): a random projection (transformers' CLIPTextModel has none)
    and a last resblock of random weights that the diffusers layout does not have. SDXL's second
    encoder: its own projection, transposed as OpenCLIP stores it (x @ text_projection), every
    block kept, and the contrastive temperature logit_scale that converters leave out."""
    weights = {k.removeprefix("text_model."): v for k, v in load_file(fixture / folder / "model.fp16.safetensors").items()}
    layers = json.loads((fixture / folder / "config.json").read_text())["num_hidden_layers"]
    hidden = weights["embeddings.token_embedding.weight"].shape[1]
    out = {
        prefix + "token_embedding.weight": weights.pop("embeddings.token_embedding.weight"),
        prefix + "positional_embedding": weights.pop("embeddings.position_embedding.weight"),
        prefix + "ln_final.weight": weights.pop("final_layer_norm.weight"),
        prefix + "ln_final.bias": weights.pop("final_layer_norm.bias"),
    }
    if sdxl:
        out[prefix + "text_projection"] = weights.pop("text_projection.weight").T.contiguous()
        out[prefix + "logit_scale"] = torch.tensor(4.6052, dtype=torch.float16)
    else:
        out[prefix + "text_projection"] = (torch.randn(hidden, hidden) * 0.02).half()
    for n in range(layers):
        layer, block = f"encoder.layers.{n}.", f"{prefix}transformer.resblocks.{n}."
        for param in ("weight", "bias"):
            out[f"{block}attn.in_proj_{param}"] = torch.cat(
                [weights.pop(f"{layer}self_attn.{p}_proj.{param}") for p in "qkv"])
        for ours, theirs in OPEN_CLIP_LAYER.items():
            for param in ("weight", "bias"):
                out[f"{block}{theirs}.{param}"] = weights.pop(f"{layer}{ours}.{param}")
    assert not weights, f"text encoder tensors left unmapped: {sorted(weights)}"
    if not sdxl:
        last = f"{prefix}transformer.resblocks.{layers - 1}."
        dummy = f"{prefix}transformer.resblocks.{layers}."
        for name in [k for k in out if k.startswith(last)]:
            out[dummy + name.removeprefix(last)] = torch.randn(out[name].shape).half()
    return out


def ldm_checkpoint21() -> dict[str, torch.Tensor]:
    torch.manual_seed(DUMMY_BLOCK_SEED)
    out = unet_vae_to_ldm(FIXTURE21)
    out.update(open_clip_text_encoder(FIXTURE21, "text_encoder", "cond_stage_model.model.", sdxl=False))
    out["alphas_cumprod"] = torch.linspace(1, 0.005, 1000)
    return out


def ldm_checkpoint_xl() -> dict[str, torch.Tensor]:
    """SDXL as its single files name it: the UNet (add_embedding as label_emb.0) and VAE as
    above, CLIP ViT-L under conditioner.embedders.0.transformer., OpenCLIP ViT-bigG under
    conditioner.embedders.1.model.."""
    out = unet_vae_to_ldm(FIXTUREXL)
    prefix = "conditioner.embedders.0.transformer.text_model."
    for name, tensor in load_file(FIXTUREXL / "text_encoder" / "model.fp16.safetensors").items():
        out[prefix + name.removeprefix("text_model.")] = tensor
    out[prefix + "embeddings.position_ids"] = torch.arange(77)[None]
    out.update(open_clip_text_encoder(FIXTUREXL, "text_encoder_2", "conditioner.embedders.1.model.", sdxl=True))
    out["alphas_cumprod"] = torch.linspace(1, 0.005, 1000)
    return out


def check_weights(pipe, fixture: Path, text_encoders=("text_encoder",)) -> None:
    """Every weight diffusers loaded from the single file is the fixture's, bit for bit."""
    components = [("unet", "unet/diffusion_pytorch_model.fp16.safetensors"),
                  ("vae", "vae/diffusion_pytorch_model.fp16.safetensors")]
    components += [(t, f"{t}/model.fp16.safetensors") for t in text_encoders]
    for component, file in components:
        expected = load_file(fixture / file)
        loaded = getattr(pipe, component).state_dict()
        loaded = {k.removeprefix("text_model."): v for k, v in loaded.items()}
        expected = {k.removeprefix("text_model."): v for k, v in expected.items()}
        missing = set(expected) - set(loaded)
        assert not missing, f"{component}: diffusers did not load {sorted(missing)[:5]}"
        extra = set(loaded) - set(expected)
        assert not extra, f"{component}: diffusers has weights the fixture has not: {sorted(extra)[:5]}"
        for name, tensor in expected.items():
            assert torch.equal(loaded[name], tensor.float()), f"{component}.{name} differs"


@torch.no_grad()
def references(pipe, checkpoint: Path, cases_in: list[dict], stem: str) -> None:
    tensors, cases = {}, []
    shape = (1, pipe.unet.config.in_channels, SIZE // 8, SIZE // 8)
    for n, case in enumerate(cases_in):
        image = pipe(prompt=case["prompt"], negative_prompt=case["negative_prompt"] or None,
                     height=SIZE, width=SIZE, num_inference_steps=case["steps"],
                     guidance_scale=case["guidance"], latents=genmint_noise(case["seed"], shape),
                     output_type="np").images
        tensors[f"case{n}.image_uint8"] = torch.from_numpy(np.ascontiguousarray((image * 255).round().astype("uint8")))
        cases.append({**case, "width": SIZE, "height": SIZE})
    save_file(tensors, OUT / f"{stem}.safetensors")
    versions = {m.__name__: m.__version__ for m in (torch, __import__("diffusers"), __import__("transformers"))}
    (OUT / f"{stem}.json").write_text(json.dumps({
        "about": f"diffusers from_single_file outputs for {checkpoint.name} (model-runtime/parity/single_file.py)",
        "versions": versions,
        "checkpoint_sha256": hashlib.sha256(checkpoint.read_bytes()).hexdigest(),
        "scheduler": type(pipe.scheduler).__name__,
        "cases": cases,
    }, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


def single_file_family(pipeline, fixture: Path, writer: str, checkpoint: Path, tensors: dict,
                       cases: list[dict], stem: str, text_encoders=("text_encoder",), **load) -> object:
    """Saves `tensors` as the single file `checkpoint`, loads it with diffusers' `from_single_file`
    (config = the fixture written by `writer`), checks its weights are the fixture's and records
    the references `stem`; returns the pipeline for further checks."""
    assert (fixture / "model_index.json").is_file(), f"{fixture} is missing: run {writer} first"
    save_file({k: v.contiguous() for k, v in tensors.items()}, checkpoint)
    pipe = pipeline.from_single_file(str(checkpoint), config=str(fixture), torch_dtype=torch.float32,
                                     local_files_only=True, **load)
    assert type(pipe.scheduler).__name__ == "DDIMScheduler", type(pipe.scheduler).__name__
    check_weights(pipe, fixture, text_encoders)
    references(pipe, checkpoint, cases, stem)
    return pipe


def main() -> None:
    torch.set_num_threads(min(4, os.cpu_count() or 1))
    OUT.mkdir(parents=True, exist_ok=True)
    no_checker = {"safety_checker": None, "requires_safety_checker": False}
    single_file_family(StableDiffusionPipeline, FIXTURE, "sd15.py", CHECKPOINT, ldm_checkpoint(), CASES,
                       "reference", **no_checker)
    pipe = single_file_family(StableDiffusionPipeline, FIXTURE21, "sd21.py", CHECKPOINT21, ldm_checkpoint21(),
                              CASES21, "sd21-reference", **no_checker)
    assert pipe.scheduler.config.prediction_type == "v_prediction", pipe.scheduler.config.prediction_type
    pipe = single_file_family(StableDiffusionXLPipeline, FIXTUREXL, "sdxl.py", CHECKPOINTXL, ldm_checkpoint_xl(),
                              CASESXL, "sdxl-reference", ("text_encoder", "text_encoder_2"),
                              add_watermarker=False)
    assert pipe.config.force_zeros_for_empty_prompt
    sizes = ", ".join(str(c.stat().st_size) for c in (CHECKPOINT, CHECKPOINT21, CHECKPOINTXL))
    print(f"wrote {OUT} ({sizes} bytes of checkpoints)")


if __name__ == "__main__":
    main()
