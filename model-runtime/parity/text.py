"""Writes the CLIP tokenizer and text-encoder fixtures the Rust tests of genmint-model-runtime
compare against (model-runtime/tests/fixtures/text/).

1. A small CLIP BPE vocabulary in CLIP's own format: the 256 byte symbols, the same 256 with the
   `</w>` end-of-word suffix, one token per merge (merges learnt here with the `tokenizers` BPE
   trainer on a fixed corpus of prompt-like text, cut to MERGES), then `<|startoftext|>` and
   `<|endoftext|>`. Saved twice as Stable Diffusion downloads ship a tokenizer folder
   (vocab.json, merges.txt, tokenizer_config.json, special_tokens_map.json):
   `tokenizer-sd15` pads with `<|endoftext|>` (SD 1.x, SDXL's first tokenizer) and
   `tokenizer-sd2` pads with `!` (SD 2.x, SDXL's second tokenizer).
2. The same two folders re-saved by transformers' `save_pretrained` (`*-json`: tokenizer.json).
3. tokens.json: for every prompt in PROMPTS and every folder, the ids of transformers'
   `CLIPTokenizer` and `CLIPTokenizerFast` called as diffusers' pipelines call them
   (`padding="max_length", max_length=77, truncation=True`), and the untruncated length.
   With `--slow-python PY` (an interpreter with transformers 4, whose `CLIPTokenizer` is the
   pure-Python reference), that interpreter's slow and fast ids are recorded too.
4. Tiny random text encoders (hidden 32, 2 layers, quick_gelu, f16-rounded weights saved as
   f16): `CLIPTextModel` and `CLIPTextModelWithProjection`, each in both weight-name styles
   (with the `text_model.` prefix, as transformers 4 writes them, and without it, as
   transformers 5 writes `CLIPTextModel`; the style transformers did not write is made by
   renaming the keys). embeddings.safetensors holds, for EMBED_PROMPTS tokenized with
   `tokenizer-sd15`, the float32 `last_hidden_state`, `hidden_states[-2]` (what SDXL uses; SD 2.x
   in diffusers layout takes the last hidden state of a text encoder converted with one layer fewer) and, for the projection model, `text_embeds`.

Run from the repository root with the parity venv:
    .tools/parity-venv/bin/python model-runtime/parity/text.py [--slow-python PY]
Deterministic for a given torch and tokenizers version (seeded CPU RNG).
"""

import argparse
import json
import shutil
import subprocess
import tempfile
from pathlib import Path

import torch
import transformers
from safetensors import safe_open
from safetensors.torch import save_file
from tokenizers import Regex, Tokenizer, models, normalizers, pre_tokenizers, trainers
from transformers import (
    CLIPTextConfig,
    CLIPTextModel,
    CLIPTextModelWithProjection,
    CLIPTokenizer,
    CLIPTokenizerFast,
)

from common import byte_table

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "model-runtime" / "tests" / "fixtures" / "text"
MERGES = 256
LENGTH = 77
BOS, EOS = "<|startoftext|>", "<|endoftext|>"

PROMPTS = [
    "",
    " ",
    "a photo of a cat",
    "A Photo Of A CAT",
    "  a   photo\tof\n a  cat  ",
    "tabs\t\tand\r\nnewlines\u000bvertical",
    "hello, world!",
    "!!! ??? ...",
    "what's up? it's 5 o'clock, they'll've done",
    "IT'S DON'T WE'RE I'M YOU'D",
    "1234567890",
    "3.14159 and 2,718 and 1e-5",
    "café crème brûlée",
    "cafe\u0301 (decomposed accent)",
    "naïve résumé Ünïcödé ÀÉÎ Straße ÆØÅ",
    "Ελληνικά русский текст مرحبا",
    "東京タワー 夜景",
    "🦊🔥✨",
    "a fox 🦊 in the snow ❄️ at dawn",
    "(masterpiece:1.2), [best quality], {detailed}",
    "under_score and-dash / slash \\ back",
    "mail@example.com #tag $5 100%",
    "\u00a0non-breaking\u00a0space and zero\u200bwidth",
    "bell\u0007char",
    f"{BOS} hi {EOS}",
    "<|ENDOFTEXT|> shouting",
    "fine ﬁne ligature",
    "supercalifragilisticexpialidocious" * 3,
    "a " * 75,
    "a " * 76,
    "a red fox jumping over a lazy dog in a green forest, " * 8,
]

EMBED_PROMPTS = ["a photo of a cat", "café 🦊 at 5 o'clock!"]

CORPUS_WORDS = (
    "a an the of in on at with and or by photo painting portrait landscape of a cat dog fox "
    "bird red green blue yellow black white golden silver forest mountain river ocean city "
    "street night day sunset sunrise snow rain storm detailed beautiful masterpiece quality "
    "best high resolution cinematic lighting dramatic soft hard style art digital oil "
    "watercolor sketch drawing anime realistic fantasy science fiction castle dragon robot "
    "space planet galaxy star moon sun cloud sky tree flower garden house bridge car ship "
    "jumping running sitting standing flying over under near lazy quick brown happy sad "
    "it's don't they'll we're i'm you'd what's o'clock 0 1 2 3 4 5 6 7 8 9 , . ! ? ( ) [ ] :"
)


def byte_symbols():
    """CLIP's byte symbols in CLIP's vocabulary order: the printable bytes first, then the rest."""
    table = byte_table()
    printable = [b for b in range(256) if table[b] == chr(b)]
    return [table[b] for b in printable] + [table[b] for b in range(256) if b not in printable]


def learn_merges():
    """Merges learnt with CLIP's normalizer and pre-tokenizer on the corpus, first MERGES kept."""
    tokenizer = Tokenizer(models.BPE(end_of_word_suffix="</w>"))
    tokenizer.normalizer = normalizers.Sequence(
        [normalizers.NFC(), normalizers.Replace(Regex(r"\s+"), " "), normalizers.Lowercase()]
    )
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(r"""'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+"""),
                                 behavior="removed", invert=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False),
        ]
    )
    words = CORPUS_WORDS.split()
    # A fixed pseudo-random corpus of word sequences (a linear congruential walk over the words).
    state, lines = 12345, []
    for _ in range(400):
        line = []
        for _ in range(12):
            state = (state * 1103515245 + 12345) % (1 << 31)
            line.append(words[state % len(words)])
        lines.append(" ".join(line))
    trainer = trainers.BpeTrainer(
        vocab_size=100_000,
        min_frequency=2,
        show_progress=False,
        end_of_word_suffix="</w>",
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tokenizer.train_from_iterator(lines, trainer)
    merges = json.loads(tokenizer.to_str())["model"]["merges"]
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in merges]
    return merges[:MERGES]


def write_tokenizer_folder(folder, vocab, merges, pad):
    folder.mkdir(parents=True)
    (folder / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    (folder / "merges.txt").write_text(
        "#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges), encoding="utf-8"
    )

    # As SD's tokenizer_config.json writes them (transformers 4.2x era).
    def added(content):
        return {"__type": "AddedToken", "content": content, "lstrip": False, "normalized": True,
                "rstrip": False, "single_word": False}

    config = {
        "add_prefix_space": False,
        "bos_token": added(BOS),
        "do_lower_case": True,
        "eos_token": added(EOS),
        "errors": "replace",
        "model_max_length": LENGTH,
        "pad_token": pad,
        "tokenizer_class": "CLIPTokenizer",
        "unk_token": added(EOS),
    }
    (folder / "tokenizer_config.json").write_text(json.dumps(config, indent=2) + "\n")
    special = {
        "bos_token": {k: v for k, v in added(BOS).items() if k != "__type"},
        "eos_token": {k: v for k, v in added(EOS).items() if k != "__type"},
        "pad_token": pad,
        "unk_token": {k: v for k, v in added(EOS).items() if k != "__type"},
    }
    (folder / "special_tokens_map.json").write_text(json.dumps(special, indent=2) + "\n")


def encode(tokenizer, prompt):
    ids = tokenizer(prompt, padding="max_length", max_length=LENGTH, truncation=True)["input_ids"]
    full = len(tokenizer(prompt)["input_ids"])
    return ids, full


SLOW_SNIPPET = """
import json, sys, transformers
from transformers import CLIPTokenizer, CLIPTokenizerFast
folder, prompts = sys.argv[1], json.loads(sys.stdin.read())
out = {"version": transformers.__version__}
for name, cls in [("slow", CLIPTokenizer), ("fast", CLIPTokenizerFast)]:
    tok = cls.from_pretrained(folder)
    out[name] = [tok(p, padding="max_length", max_length=77, truncation=True)["input_ids"] for p in prompts]
print(json.dumps(out))
"""


def slow_reference(python, folder):
    run = subprocess.run([python, "-c", SLOW_SNIPPET, str(folder)], input=json.dumps(PROMPTS),
                         capture_output=True, text=True, check=True)
    return json.loads(run.stdout.strip().splitlines()[-1])


def rename(path, to_prefixed):
    """Rewrites a safetensors file with every text-model key given or stripped of `text_model.`."""
    with safe_open(path, "pt") as f:
        tensors = {k: f.get_tensor(k) for k in f.keys()}
        metadata = f.metadata()
    renamed = {}
    for key, tensor in tensors.items():
        bare = key.removeprefix("text_model.")
        if key == "text_projection.weight":
            renamed[key] = tensor
        else:
            renamed["text_model." + bare if to_prefixed else bare] = tensor
    save_file(renamed, path, metadata=metadata)


def is_prefixed(path):
    with safe_open(path, "pt") as f:
        return any(k.startswith("text_model.") for k in f.keys())


def build_encoders(vocab_size, eos_id, ids):
    config = CLIPTextConfig(
        vocab_size=vocab_size, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, max_position_embeddings=LENGTH, hidden_act="quick_gelu",
        layer_norm_eps=1e-5, projection_dim=16, bos_token_id=vocab_size - 2, eos_token_id=eos_id,
        pad_token_id=eos_id,
    )
    outputs = {"ids": ids}
    for name, cls, seed in [("clip-text", CLIPTextModel, 1), ("clip-text-projection",
                                                            CLIPTextModelWithProjection, 2)]:
        torch.manual_seed(seed)
        model = cls(config).eval()
        # The same weights at f16 precision in the file and in the float32 reference model.
        with torch.no_grad():
            for parameter in model.parameters():
                parameter.copy_(parameter.half().float())
        with tempfile.TemporaryDirectory() as tmp:
            model.to(torch.float16).save_pretrained(tmp)
            model.to(torch.float32)
            written = Path(tmp) / "model.safetensors"
            style = "prefixed" if is_prefixed(written) else "bare"
            other = "bare" if style == "prefixed" else "prefixed"
            for target in (style, other):
                folder = OUT / f"{name}-{target}"
                folder.mkdir(parents=True)
                shutil.copy(Path(tmp) / "config.json", folder / "config.json")
                shutil.copy(written, folder / "model.safetensors")
            rename(OUT / f"{name}-{other}" / "model.safetensors", to_prefixed=other == "prefixed")
            print(f"{name}: transformers writes {style} keys; {other} made by renaming")
        with torch.no_grad():
            result = model(input_ids=ids, output_hidden_states=True)
        key = name.removeprefix("clip-")
        outputs[f"{key}.last_hidden_state"] = result.last_hidden_state.contiguous()
        outputs[f"{key}.penultimate"] = result.hidden_states[-2].contiguous()
        if hasattr(result, "text_embeds"):
            outputs[f"{key}.text_embeds"] = result.text_embeds.contiguous()
    save_file(outputs, OUT / "embeddings.safetensors")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--slow-python", help="an interpreter with transformers 4 (slow CLIPTokenizer)")
    args = parser.parse_args()
    if OUT.exists():
        shutil.rmtree(OUT)
    OUT.mkdir(parents=True)

    merges = learn_merges()
    symbols = byte_symbols()
    tokens = symbols + [s + "</w>" for s in symbols] + ["".join(m) for m in merges] + [BOS, EOS]
    vocab = {token: index for index, token in enumerate(tokens)}
    assert len(vocab) == len(tokens), "a merge produced a token twice"

    record = {"transformers": transformers.__version__, "length": LENGTH, "prompts": PROMPTS,
              "folders": {}}
    for style, pad in [("sd15", EOS), ("sd2", "!")]:
        folder = OUT / f"tokenizer-{style}"
        write_tokenizer_folder(folder, vocab, merges, pad)
        slow = CLIPTokenizer.from_pretrained(folder)
        fast = CLIPTokenizerFast.from_pretrained(folder)
        json_folder = OUT / f"tokenizer-{style}-json"
        fast.save_pretrained(json_folder)
        # Only the tokenizer.json route is exercised there.
        for extra in ("vocab.json", "merges.txt", "special_tokens_map.json"):
            (json_folder / extra).unlink(missing_ok=True)
        reloaded = CLIPTokenizerFast.from_pretrained(json_folder)
        entry = {"pad_id": slow.pad_token_id, "slow": [], "fast": [], "fast_from_json": [],
                 "untruncated_lengths": []}
        for prompt in PROMPTS:
            ids, full = encode(slow, prompt)
            entry["slow"].append(ids)
            entry["untruncated_lengths"].append(full)
            entry["fast"].append(encode(fast, prompt)[0])
            entry["fast_from_json"].append(encode(reloaded, prompt)[0])
        if args.slow_python:
            reference = slow_reference(args.slow_python, folder)
            entry["transformers4"] = reference
        record["folders"][style] = entry
    (OUT / "tokens.json").write_text(json.dumps(record, ensure_ascii=False) + "\n", encoding="utf-8")

    embed_tokenizer = CLIPTokenizer.from_pretrained(OUT / "tokenizer-sd15")
    ids = torch.tensor([encode(embed_tokenizer, p)[0] for p in EMBED_PROMPTS], dtype=torch.int64)
    build_encoders(len(vocab), vocab[EOS], ids)
    total = sum(p.stat().st_size for p in OUT.rglob("*") if p.is_file())
    print(f"{len(vocab)} tokens, {len(PROMPTS)} prompts; fixtures {total} bytes")


if __name__ == "__main__":
    main()
