"""Pictures and copies for scripts/bench-watermark.sh.

`corpus OUT N`: N pictures of 512x512 that look like real ones: crops of scikit-image's sample
photographs (random position, scale and flips, from a fixed seed) and upscaled emoji, as RGB PNGs
named 0000.png, 0001.png, ...

`copies MARKED OUT`: for every PNG in MARKED, the copies a picture meets online, one folder per
kind under OUT (jpeg90, jpeg70, jpeg50, webp80, resize50, crop10, bright+10, bright-10,
contrast+10, contrast-10, png, screenshot), each file keeping its number.
"""

import glob
import io
import os
import random
import sys

import numpy as np
from PIL import Image, ImageEnhance
from skimage import data

SIZE = 512
PHOTOS = [
    "astronaut", "camera", "chelsea", "coffee", "coins", "grass", "gravel", "brick", "moon",
    "motorcycle_left", "motorcycle_right", "retina", "rocket", "hubble_deep_field", "immunohistochemistry",
    "page", "text", "clock", "cell", "microaneurysms", "colorwheel", "logo", "horse",
]


def photos():
    for name in PHOTOS:
        try:
            array = getattr(data, name)()
        except Exception:  # a sample that needs a download is left out
            continue
        if array.dtype != np.uint8:
            array = (255 * (array.astype(np.float64) / max(1, array.max()))).astype(np.uint8)
        image = Image.fromarray(array)
        yield name, image.convert("RGB")


def emoji_files():
    root = os.environ.get("EMOJI_DIR", "")
    return sorted(glob.glob(os.path.join(root, "**", "img", "google", "64", "*.png"), recursive=True))


def crop(image, rng):
    w, h = image.size
    side = min(w, h) * rng.uniform(0.45, 1.0)
    x, y = rng.uniform(0, w - side), rng.uniform(0, h - side)
    out = image.crop((int(x), int(y), int(x + side), int(y + side))).resize((SIZE, SIZE), Image.LANCZOS)
    if rng.random() < 0.5:
        out = out.transpose(Image.FLIP_LEFT_RIGHT)
    if rng.random() < 0.25:
        out = out.transpose(Image.FLIP_TOP_BOTTOM)
    return out


def emoji(path, rng):
    background = tuple(rng.randrange(256) for _ in range(3))
    picture = Image.open(path).convert("RGBA")
    canvas = Image.new("RGBA", picture.size, background + (255,))
    canvas.alpha_composite(picture)
    return canvas.convert("RGB").resize((SIZE, SIZE), Image.BICUBIC)


def corpus(out, count):
    os.makedirs(out, exist_ok=True)
    rng = random.Random(16)
    sources = list(photos())
    emojis = emoji_files()
    for i in range(count):
        # Two of three from photographs, one of three an emoji when there are any.
        if emojis and i % 3 == 2:
            picture = emoji(emojis[rng.randrange(len(emojis))], rng)
        else:
            picture = crop(sources[rng.randrange(len(sources))][1], rng)
        picture.save(os.path.join(out, f"{i:04d}.png"))
    print(f"{count} pictures from {len(sources)} photographs and {len(emojis)} emoji", file=sys.stderr)


def encoded(image, fmt, **options):
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def screenshot(image):
    # A screen showing the picture at 90 %, captured and re-saved: resampled, slightly offset, a
    # border of the page around it.
    w, h = image.size
    shown = image.resize((int(w * 0.9), int(h * 0.9)), Image.BILINEAR)
    page = Image.new("RGB", (shown.width + 24, shown.height + 24), (246, 246, 246))
    page.paste(shown, (12, 12))
    return page


def copies(marked, out):
    kinds = {
        "jpeg90": lambda im: ("jpg", encoded(im, "JPEG", quality=90)),
        "jpeg70": lambda im: ("jpg", encoded(im, "JPEG", quality=70)),
        "jpeg50": lambda im: ("jpg", encoded(im, "JPEG", quality=50)),
        "webp80": lambda im: ("webp", encoded(im, "WEBP", quality=80)),
        "resize50": lambda im: ("png", encoded(im.resize((im.width // 2, im.height // 2), Image.LANCZOS), "PNG")),
        "resize50jpeg70": lambda im: (
            "jpg", encoded(im.resize((im.width // 2, im.height // 2), Image.LANCZOS), "JPEG", quality=70)),
        "crop10": lambda im: ("png", encoded(im.crop((0, 0, int(im.width * 0.9), int(im.height * 0.9))), "PNG")),
        "crop10center": lambda im: ("png", encoded(
            im.crop((im.width // 20, im.height // 20, im.width - im.width // 20, im.height - im.height // 20)), "PNG")),
        "bright+10": lambda im: ("png", encoded(ImageEnhance.Brightness(im).enhance(1.1), "PNG")),
        "bright-10": lambda im: ("png", encoded(ImageEnhance.Brightness(im).enhance(0.9), "PNG")),
        "contrast+10": lambda im: ("png", encoded(ImageEnhance.Contrast(im).enhance(1.1), "PNG")),
        "contrast-10": lambda im: ("png", encoded(ImageEnhance.Contrast(im).enhance(0.9), "PNG")),
        "png": lambda im: ("png", encoded(im, "PNG", optimize=True)),
        "screenshot": lambda im: ("png", encoded(screenshot(im), "PNG")),
    }
    files = sorted(glob.glob(os.path.join(marked, "*.png")))
    for kind, make in kinds.items():
        folder = os.path.join(out, kind)
        os.makedirs(folder, exist_ok=True)
        for path in files:
            ext, data_bytes = make(Image.open(path).convert("RGB"))
            name = os.path.splitext(os.path.basename(path))[0]
            with open(os.path.join(folder, f"{name}.{ext}"), "wb") as f:
                f.write(data_bytes)


if __name__ == "__main__":
    if sys.argv[1] == "corpus":
        corpus(sys.argv[2], int(sys.argv[3]))
    elif sys.argv[1] == "copies":
        copies(sys.argv[2], sys.argv[3])
    else:
        sys.exit("usage: pictures.py corpus OUT N | copies MARKED OUT")
