"""Build the emoji training set: 32x32 RGB images, captions per concept, the held-out prompts and the retrieval index."""

import argparse
import hashlib
import json
import struct
from pathlib import Path

import numpy as np
from PIL import Image

from model_spec import EMOJI_DATA_DIR, IMAGE_SIZE, MODEL_DIR, RUN_DIR

STYLES = ("google", "twitter")

# Phrasings used for training captions.
TRAIN_TEMPLATES = (
    "{name}",
    "an emoji of {name}",
    "{name} emoji",
    "{name} icon",
    "a picture of {name}, {tag}",
    "a {name}",
    "{name}, {tag}",
    "emoji: {name}",
)
# Phrasings never seen in training: used only by the held-out evaluation prompts.
EVAL_TEMPLATES = (
    "a small drawing of {name}",
    "{name} clipart",
    "an illustration showing {name}",
    "a cartoon {name} symbol",
)
HELDOUT_CONCEPT_BUCKETS = 20  # concepts whose code-point hash falls in bucket 0 (~5%) are never trained on
HELDOUT_PHRASING_PROMPTS = 200


def stable_hash(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")


def normalise_hexcode(code: str) -> str:
    return "-".join(part for part in code.upper().split("-") if part != "FE0F")


def load_emojibase() -> dict:
    entries = json.loads((EMOJI_DATA_DIR / "emojibase-data" / "en" / "data.json").read_text())
    return {normalise_hexcode(e["hexcode"]): e for e in entries}


def clean(text: str) -> str:
    return " ".join(text.replace("_", " ").replace("-", " ").lower().split())


def concept_names(entry: dict, base: dict | None) -> tuple[str, list[str], list[str]]:
    """The primary name, all alternative names and the descriptive tags of one emoji."""
    names = []
    if base is not None and base.get("label"):
        names.append(base["label"].lower())
    if entry.get("name"):
        names.append(entry["name"].lower())
    names += [clean(s) for s in entry.get("short_names", [])]
    unique = list(dict.fromkeys(n for n in names if n))
    tags = [t.lower() for t in (base or {}).get("tags", [])]
    tags += [clean(entry["subcategory"]), entry["category"].lower()]
    tags = list(dict.fromkeys(t for t in tags if t and t not in unique))
    return unique[0], unique, tags


def captions_for(names: list[str], tags: list[str], templates, limit: int, seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    out = []
    for name in names:
        for template in templates:
            tag = tags[rng.integers(len(tags))] if tags else name
            out.append(template.format(name=name, tag=tag))
    out = list(dict.fromkeys(out))
    if len(out) > limit:
        keep = rng.choice(len(out), size=limit, replace=False)
        out = [out[i] for i in sorted(keep)]
    return out


def load_image(path: Path) -> np.ndarray:
    """RGBA composited on white, box-downsampled to IMAGE_SIZE, as RGB uint8."""
    rgba = np.asarray(Image.open(path).convert("RGBA"), dtype=np.float64) / 255.0
    rgb = rgba[..., :3] * rgba[..., 3:] + (1.0 - rgba[..., 3:])
    factor = rgb.shape[0] // IMAGE_SIZE
    assert rgb.shape[:2] == (IMAGE_SIZE * factor, IMAGE_SIZE * factor), path
    rgb = rgb.reshape(IMAGE_SIZE, factor, IMAGE_SIZE, factor, 3).mean(axis=(1, 3))
    return np.round(rgb * 255.0).astype(np.uint8)


def build(run_dir: Path, model_dir: Path, captions_per_concept: int) -> None:
    emojibase = load_emojibase()
    per_style = {}
    for style in STYLES:
        package = EMOJI_DATA_DIR / f"emoji-datasource-{style}"
        per_style[style] = (package, {e["unified"]: e for e in json.loads((package / "emoji.json").read_text())})
    entries = sorted(per_style["google"][1].values(), key=lambda e: (e["sort_order"], e["unified"]))

    concepts, images, image_concepts, image_styles = [], [], [], []
    train_captions, train_caption_concepts = [], []
    for entry in entries:
        unified = entry["unified"]
        base = emojibase.get(normalise_hexcode(unified))
        name, names, tags = concept_names(entry, base)
        concept_id = len(concepts)
        heldout = stable_hash(unified) % HELDOUT_CONCEPT_BUCKETS == 0
        found = []
        for style in STYLES:
            package, by_unified = per_style[style]
            item = by_unified.get(unified)
            path = package / "img" / style / "64" / entry["image"]
            if item is None or not item.get(f"has_img_{style}") or not path.exists():
                continue
            found.append((style, load_image(path)))
        if not found:
            continue
        concepts.append(dict(id=concept_id, unified=unified, name=name, names=names, tags=tags, heldout=heldout))
        for style, pixels in found:
            images.append(pixels)
            image_concepts.append(concept_id)
            image_styles.append(STYLES.index(style))
        if not heldout:
            for caption in captions_for(names, tags, TRAIN_TEMPLATES, captions_per_concept, stable_hash(unified)):
                train_captions.append(caption)
                train_caption_concepts.append(concept_id)

    images = np.stack(images)
    image_concepts = np.asarray(image_concepts, dtype=np.uint32)
    heldout_ids = {c["id"] for c in concepts if c["heldout"]}
    train_mask = np.array([c not in heldout_ids for c in image_concepts.tolist()])

    prompts = heldout_prompts(concepts)
    run_dir.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        run_dir / "dataset.npz",
        images=images[train_mask],
        image_concepts=image_concepts[train_mask],
        image_styles=np.asarray(image_styles, dtype=np.uint8)[train_mask],
        caption_texts=np.asarray(train_captions),
        caption_concepts=np.asarray(train_caption_concepts, dtype=np.uint32),
    )
    (run_dir / "concepts.json").write_text(json.dumps(concepts, ensure_ascii=False, indent=1) + "\n")
    write_retrieval(run_dir, images, image_concepts, concepts)
    model_dir.mkdir(parents=True, exist_ok=True)
    (model_dir / "heldout.json").write_text(json.dumps(prompts, ensure_ascii=False, indent=1) + "\n")
    stats = dict(
        concepts=len(concepts),
        training_concepts=len(concepts) - len(heldout_ids),
        heldout_concepts=len(heldout_ids),
        images=int(len(images)),
        training_images=int(train_mask.sum()),
        training_captions=len(train_captions),
        heldout_prompts_phrasing=sum(p["kind"] == "phrasing" for p in prompts),
        heldout_prompts_concept=sum(p["kind"] == "concept" for p in prompts),
    )
    (run_dir / "dataset-stats.json").write_text(json.dumps(stats, indent=1) + "\n")
    print(json.dumps(stats))


def heldout_prompts(concepts: list[dict]) -> list[dict]:
    """Unseen phrasings of training concepts, then every held-out concept (under an unseen phrasing too)."""
    prompts = []
    trained = sorted((c for c in concepts if not c["heldout"]), key=lambda c: stable_hash("phrasing:" + c["unified"]))
    for i, concept in enumerate(trained[:HELDOUT_PHRASING_PROMPTS]):
        template = EVAL_TEMPLATES[i % len(EVAL_TEMPLATES)]
        prompts.append(dict(prompt=template.format(name=concept["name"]), concept=concept["id"],
                            concept_name=concept["name"], kind="phrasing"))
    for i, concept in enumerate(c for c in concepts if c["heldout"]):
        template = (TRAIN_TEMPLATES[1],) + EVAL_TEMPLATES
        prompts.append(dict(prompt=template[i % len(template)].format(name=concept["name"]), concept=concept["id"],
                            concept_name=concept["name"], kind="concept"))
    return prompts


def write_retrieval(run_dir: Path, images: np.ndarray, image_concepts: np.ndarray, concepts: list[dict]) -> None:
    """retrieval.bin: per reference image, concept id (u32 LE) then 32*32*3 RGB bytes (row-major, HWC)."""
    with open(run_dir / "retrieval.bin", "wb") as out:
        for concept, pixels in zip(image_concepts.tolist(), images):
            out.write(struct.pack("<I", concept))
            out.write(np.ascontiguousarray(pixels, dtype=np.uint8).tobytes())
    index = [dict(id=c["id"], name=c["name"], unified=c["unified"], heldout=c["heldout"]) for c in concepts]
    (run_dir / "retrieval-concepts.json").write_text(json.dumps(index, ensure_ascii=False, indent=1) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--run-dir", type=Path, default=RUN_DIR)
    parser.add_argument("--model-dir", type=Path, default=MODEL_DIR)
    parser.add_argument("--captions-per-concept", type=int, default=16)
    args = parser.parse_args()
    build(args.run_dir, args.model_dir, args.captions_per_concept)


if __name__ == "__main__":
    main()
