"""Writes tests/fixtures/sd15-sharded/: the sd15-tiny fixture's VAE and text encoder (sd15.py
must run first) saved again by diffusers and transformers themselves with a small
`max_shard_size`, as the hub ships large components: an index
(`diffusion_pytorch_model.safetensors.index.fp16.json`, `model.safetensors.index.fp16.json`) whose
`weight_map` names each tensor's shard, and the shards. Only those two folders are written; the
Rust test tests/runtime/sharded.rs puts them in place of sd15-tiny's single files and expects the
same model (bit-identical pictures).

Run from the repository root with the parity venv (scripts/parity-fixtures.sh does both).
"""

import shutil

import torch
from diffusers import AutoencoderKL
from transformers import CLIPTextModel

from common import FIXTURES

SOURCE = FIXTURES / "sd15-tiny"
OUT = FIXTURES / "sd15-sharded"


def main() -> None:
    assert (SOURCE / "model_index.json").is_file(), f"{SOURCE} is missing: run sd15.py first"
    shutil.rmtree(OUT, ignore_errors=True)
    vae = AutoencoderKL.from_pretrained(SOURCE / "vae", variant="fp16", torch_dtype=torch.float16)
    vae.save_pretrained(OUT / "vae", variant="fp16", max_shard_size="100KB")
    text = CLIPTextModel.from_pretrained(SOURCE / "text_encoder", variant="fp16", dtype=torch.float16)
    text.save_pretrained(OUT / "text_encoder", variant="fp16", max_shard_size="40KB")
    for folder in ("vae", "text_encoder"):
        files = sorted(p.name for p in (OUT / folder).iterdir())
        assert any("index" in f for f in files), f"{folder} was not sharded: {files}"
        print(folder, files)


if __name__ == "__main__":
    main()
