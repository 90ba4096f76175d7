"""Train the genmint-emoji-32 UNet (v-prediction, classifier-free dropout, EMA) with periodic, signal-safe, resumable checkpoints."""

import argparse
import copy
import json
import math
import os
import signal
import time
from pathlib import Path

import numpy as np
import torch

from model_spec import RUN_DIR, TEXT_DIM, build_train_scheduler, build_unet

CHECKPOINT = "checkpoint.pt"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--run-dir", type=Path, default=RUN_DIR)
    parser.add_argument("--steps", type=int, default=200_000, help="stop at this total optimizer step")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--warmup-steps", type=int, default=100)
    parser.add_argument("--ema-decay", type=float, default=0.995)
    parser.add_argument("--cond-dropout", type=float, default=0.1)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--checkpoint-minutes", type=float, default=4.0)
    parser.add_argument("--log-every", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--fresh", action="store_true", help="ignore an existing checkpoint")
    return parser.parse_args()


class TrainingData:
    """Training images in [-1, 1] and, per image, the token embeddings of its concept's captions."""

    def __init__(self, run_dir: Path, device: str):
        data = np.load(run_dir / "dataset.npz")
        embeddings = np.load(run_dir / "embeddings.npz")
        self.images = torch.from_numpy(data["images"]).permute(0, 3, 1, 2).float().div(127.5).sub(1.0).to(device)
        # Kept as f16 (the whole set is ~400 MB); a batch is widened to f32.
        self.tokens = torch.from_numpy(embeddings["caption_tokens"]).to(device)
        self.lengths = torch.from_numpy(embeddings["caption_lengths"]).long().to(device)
        caption_concepts = data["caption_concepts"]
        order = np.argsort(caption_concepts, kind="stable")
        starts = np.searchsorted(caption_concepts[order], data["image_concepts"], side="left")
        ends = np.searchsorted(caption_concepts[order], data["image_concepts"], side="right")
        assert np.all(ends > starts), "every training image needs at least one caption"
        self.caption_order = torch.from_numpy(order).to(device)
        self.caption_start = torch.from_numpy(starts).to(device)
        self.caption_count = torch.from_numpy(ends - starts).to(device)
        self.device = device

    def __len__(self) -> int:
        return self.images.shape[0]

    def batch(self, size: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(images, context [size, tokens, 384] cut to the batch's longest caption, attention mask)."""
        index = torch.randint(0, len(self), (size,), generator=generator).to(self.device)
        pick = (torch.rand(size, generator=generator).to(self.device) * self.caption_count[index]).long()
        caption = self.caption_order[self.caption_start[index] + pick]
        lengths = self.lengths[caption]
        longest = int(lengths.max())
        mask = (torch.arange(longest, device=self.device)[None, :] < lengths[:, None]).long()
        return self.images[index], self.tokens[caption, :longest].float(), mask


def lr_factor(step: int, warmup: int) -> float:
    return min(1.0, (step + 1) / max(1, warmup))


def save_checkpoint(path: Path, state: dict) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    run_dir: Path = args.run_dir
    data = TrainingData(run_dir, args.device)
    model = build_unet().to(args.device)
    ema = copy.deepcopy(model).eval().requires_grad_(False)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01)
    scheduler = build_train_scheduler()
    alphas_cumprod = scheduler.alphas_cumprod.to(args.device)
    generator = torch.Generator().manual_seed(args.seed)
    step, samples_seen = 0, 0

    checkpoint_path = run_dir / CHECKPOINT
    resume = checkpoint_path.exists() and not args.fresh
    if resume:
        state = torch.load(checkpoint_path, map_location=args.device, weights_only=False)
        model.load_state_dict(state["model"])
        ema.load_state_dict(state["ema"])
        optimizer.load_state_dict(state["optimizer"])
        generator.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
        step, samples_seen = state["step"], state["samples_seen"]
        print(f"resumed from step {step} ({samples_seen} samples seen)", flush=True)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"UNet parameters: {n_params} ({n_params * 2 / 2**20:.2f} MiB as f16); {len(data)} training images", flush=True)

    stop = {"requested": False}

    def request_stop(signum, _frame):
        print(f"signal {signum}: checkpointing and stopping", flush=True)
        stop["requested"] = True

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)

    def checkpoint() -> None:
        save_checkpoint(checkpoint_path, dict(
            model=model.state_dict(), ema=ema.state_dict(), optimizer=optimizer.state_dict(),
            generator=generator.get_state(), torch_rng=torch.get_rng_state(), step=step,
            samples_seen=samples_seen, args={k: str(v) for k, v in vars(args).items()}))
        print(f"checkpoint at step {step}", flush=True)

    log = open(run_dir / "train-log.jsonl", "a" if resume else "w")
    model.train()
    last_checkpoint = time.monotonic()
    window_loss, window_n, window_start = 0.0, 0, time.monotonic()
    while step < args.steps and not stop["requested"]:
        x0, context, mask = data.batch(args.batch_size, generator)
        keep = (torch.rand(args.batch_size, generator=generator) >= args.cond_dropout).to(args.device)
        # Dropped captions become all-zero tokens: attention over zeros gives the same output at
        # any length, which is the all-zero unconditional context candle uses at sampling time.
        context = context * keep[:, None, None].to(context.dtype)
        noise = torch.randn(x0.shape, generator=generator).to(args.device)
        t = torch.randint(0, scheduler.config.num_train_timesteps, (args.batch_size,), generator=generator).to(args.device)
        a = alphas_cumprod[t].sqrt()[:, None, None, None]
        s = (1.0 - alphas_cumprod[t]).sqrt()[:, None, None, None]
        noisy = a * x0 + s * noise
        target = a * noise - s * x0  # v-prediction
        for group in optimizer.param_groups:
            group["lr"] = args.lr * lr_factor(step, args.warmup_steps)
        prediction = model(noisy, t, encoder_hidden_states=context, encoder_attention_mask=mask).sample
        loss = torch.nn.functional.mse_loss(prediction, target)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        decay = min(args.ema_decay, (1 + step) / (10 + step))
        with torch.no_grad():
            for e, p in zip(ema.parameters(), model.parameters()):
                e.lerp_(p, 1.0 - decay)
        step += 1
        samples_seen += args.batch_size
        window_loss += loss.item()
        window_n += 1
        if step % args.log_every == 0:
            elapsed = time.monotonic() - window_start
            record = dict(step=step, samples_seen=samples_seen, loss=window_loss / window_n,
                          samples_per_s=window_n * args.batch_size / elapsed, time=time.time())
            log.write(json.dumps(record) + "\n")
            log.flush()
            print(json.dumps(record), flush=True)
            window_loss, window_n, window_start = 0.0, 0, time.monotonic()
        if time.monotonic() - last_checkpoint > args.checkpoint_minutes * 60:
            checkpoint()
            last_checkpoint = time.monotonic()
    checkpoint()
    if not math.isfinite(loss.item()):
        raise SystemExit("training diverged (non-finite loss)")


if __name__ == "__main__":
    main()
