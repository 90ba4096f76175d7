"""Precompute all-MiniLM-L6-v2 sentence embeddings (masked mean pool + L2 norm) for every caption and held-out prompt."""

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from model_spec import MODEL_DIR, RUN_DIR, TEXT_MAX_TOKENS, minilm_dir


class SentenceEncoder:
    """BERT last hidden state, mean-pooled over real tokens, L2-normalised (= sentence-transformers' embedding)."""

    def __init__(self, device: str = "cpu"):
        from transformers import AutoModel, AutoTokenizer

        path = minilm_dir()
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.model = AutoModel.from_pretrained(path).to(device).eval()
        self.device = device

    @torch.no_grad()
    def encode(self, texts: list[str], batch_size: int = 256) -> np.ndarray:
        out = []
        for start in range(0, len(texts), batch_size):
            batch = self.tokenizer(texts[start : start + batch_size], padding=True, truncation=True,
                                   max_length=TEXT_MAX_TOKENS, return_tensors="pt").to(self.device)
            hidden = self.model(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            out.append(torch.nn.functional.normalize(pooled, dim=-1).float().cpu().numpy())
        return np.concatenate(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--run-dir", type=Path, default=RUN_DIR)
    parser.add_argument("--model-dir", type=Path, default=MODEL_DIR)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.set_num_threads(2)
    data = np.load(args.run_dir / "dataset.npz")
    captions = [str(c) for c in data["caption_texts"]]
    prompts = [p["prompt"] for p in json.loads((args.model_dir / "heldout.json").read_text())]
    encoder = SentenceEncoder(args.device)
    np.savez(args.run_dir / "embeddings.npz",
             captions=encoder.encode(captions).astype(np.float32),
             heldout=encoder.encode(prompts).astype(np.float32))
    print(f"embedded {len(captions)} captions and {len(prompts)} held-out prompts")


if __name__ == "__main__":
    main()
