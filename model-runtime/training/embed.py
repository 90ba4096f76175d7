"""Precompute all-MiniLM-L6-v2 token embeddings (last hidden state over the real tokens) for every caption and held-out prompt."""

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from model_spec import MODEL_DIR, RUN_DIR, TEXT_MAX_TOKENS, minilm_dir


class TokenEncoder:
    """BERT's last hidden state for [CLS] … [SEP] of each text, truncated at 128 tokens: the UNet's context."""

    def __init__(self, device: str = "cpu"):
        from transformers import AutoModel, AutoTokenizer

        path = minilm_dir()
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.model = AutoModel.from_pretrained(path).to(device).eval()
        self.device = device

    @torch.no_grad()
    def encode(self, texts: list[str], batch_size: int = 256) -> tuple[np.ndarray, np.ndarray]:
        """(tokens [n, longest, 384] f16 with zeros after each text's end, lengths [n] int32)."""
        batches, lengths = [], []
        for start in range(0, len(texts), batch_size):
            batch = self.tokenizer(texts[start : start + batch_size], padding=True, truncation=True,
                                   max_length=TEXT_MAX_TOKENS, return_tensors="pt").to(self.device)
            hidden = self.model(**batch).last_hidden_state
            mask = batch["attention_mask"]
            batches.append((hidden * mask.unsqueeze(-1).to(hidden.dtype)).float().cpu().numpy())
            lengths.append(mask.sum(1).cpu().numpy().astype(np.int32))
        longest = max(b.shape[1] for b in batches)
        tokens = np.concatenate([np.pad(b, ((0, 0), (0, longest - b.shape[1]), (0, 0))) for b in batches])
        return tokens.astype(np.float16), np.concatenate(lengths)

    def context(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """(context [n, longest, 384] f32, attention mask [n, longest] with 1 on real tokens)."""
        tokens, lengths = self.encode(texts)
        mask = torch.arange(tokens.shape[1])[None, :] < torch.from_numpy(lengths)[:, None]
        return torch.from_numpy(tokens).float(), mask.long()


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
    encoder = TokenEncoder(args.device)
    caption_tokens, caption_lengths = encoder.encode(captions)
    heldout_tokens, heldout_lengths = encoder.encode(prompts)
    np.savez(args.run_dir / "embeddings.npz", caption_tokens=caption_tokens, caption_lengths=caption_lengths,
             heldout_tokens=heldout_tokens, heldout_lengths=heldout_lengths)
    print(f"embedded {len(captions)} captions (up to {caption_tokens.shape[1]} tokens) and {len(prompts)} held-out prompts")


if __name__ == "__main__":
    main()
