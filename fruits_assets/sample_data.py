"""Fruits-360-shaped sample images: ``<dir>/Training|Test/<Label>/<i>_100.jpg``, 100x100 JPEG.

Usage: ``python -m fruits_assets.sample_data DIR --images N [--classes C] [--seed S]``.
Classes differ visibly (colour, shape, texture) so features and PCA have real structure; labels
include spaces and a non-ASCII name, as real collections do.
"""

from __future__ import annotations

import argparse
import math
import random
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw, ImageFilter

SIZE = 100


@dataclass(frozen=True)
class FruitStyle:
    label: str
    color: tuple[int, int, int]
    shape: str  # round | oval | long | pear | cluster | pair | spotted
    accent: tuple[int, int, int]


CLASSES = (
    FruitStyle("Apple Braeburn", (176, 32, 38), "round", (240, 190, 60)),
    FruitStyle("Banana", (236, 210, 60), "long", (90, 70, 20)),
    FruitStyle("Kiwi", (120, 90, 50), "oval", (110, 170, 40)),
    FruitStyle("Lemon Meyer", (250, 230, 90), "oval", (200, 170, 30)),
    FruitStyle("Orange", (245, 140, 20), "spotted", (200, 100, 10)),
    FruitStyle("Pear Forelle", (170, 190, 60), "pear", (200, 60, 40)),
    FruitStyle("Grape Blue", (70, 40, 110), "cluster", (40, 20, 70)),
    FruitStyle("Cherry Rainier", (220, 120, 90), "pair", (80, 120, 30)),
    FruitStyle("Avocado", (40, 70, 30), "pear", (20, 40, 10)),
    FruitStyle("Clémentine", (250, 120, 40), "round", (60, 140, 40)),
)


def _jitter(color: tuple[int, int, int], rng: random.Random, amount: int = 25) -> tuple[int, int, int]:
    return tuple(max(0, min(255, c + rng.randint(-amount, amount))) for c in color)  # type: ignore[return-value]


def draw_fruit(style: FruitStyle, rng: random.Random) -> Image.Image:
    """One 100x100 RGB image of ``style`` on a near-white background, randomly placed and lit."""
    big = SIZE * 2  # drawn at 2x then downsampled for smooth edges
    img = Image.new("RGB", (big, big), _jitter((252, 252, 252), rng, 3))
    d = ImageDraw.Draw(img)
    cx, cy = big / 2 + rng.uniform(-12, 12), big / 2 + rng.uniform(-12, 12)
    s = rng.uniform(0.75, 1.0) * big * 0.36
    col, acc = _jitter(style.color, rng), _jitter(style.accent, rng)
    if style.shape in ("round", "spotted"):
        d.ellipse([cx - s, cy - s, cx + s, cy + s], fill=col)
        if style.shape == "spotted":
            for _ in range(40):
                a, r = rng.uniform(0, 2 * math.pi), rng.uniform(0, s * 0.9)
                x, y = cx + r * math.cos(a), cy + r * math.sin(a)
                d.ellipse([x - 2, y - 2, x + 2, y + 2], fill=acc)
        else:
            d.ellipse([cx - s * 0.5, cy - s * 0.6, cx - s * 0.1, cy - s * 0.2], fill=acc)
    elif style.shape == "oval":
        d.ellipse([cx - s, cy - s * 0.7, cx + s, cy + s * 0.7], fill=col)
        d.ellipse([cx - s * 0.45, cy - s * 0.3, cx + s * 0.45, cy + s * 0.3], fill=acc)
    elif style.shape == "long":
        d.chord([cx - s * 1.2, cy - s * 1.1, cx + s * 1.2, cy + s * 0.9], 20, 160, fill=col)
        d.chord([cx - s * 1.1, cy - s * 0.8, cx + s * 1.1, cy + s * 0.6], 20, 160, fill=(252, 252, 252))
        d.rectangle([cx + s * 0.95, cy - s * 0.15, cx + s * 1.15, cy + s * 0.1], fill=acc)
    elif style.shape == "pear":
        d.ellipse([cx - s * 0.8, cy - s * 0.1, cx + s * 0.8, cy + s * 1.0], fill=col)
        d.ellipse([cx - s * 0.5, cy - s * 0.9, cx + s * 0.5, cy + s * 0.3], fill=col)
        d.line([cx, cy - s * 0.9, cx + s * 0.15, cy - s * 1.2], fill=acc, width=5)
    elif style.shape == "cluster":
        r = s * 0.28
        for row in range(4):
            for k in range(4 - row):
                x = cx + (k - (3 - row) / 2) * r * 1.9 + rng.uniform(-3, 3)
                y = cy - s * 0.6 + row * r * 1.7
                d.ellipse([x - r, y - r, x + r, y + r], fill=_jitter(col, rng, 12), outline=acc)
    elif style.shape == "pair":
        r = s * 0.45
        for dx in (-0.55, 0.55):
            x, y = cx + dx * s, cy + s * 0.35
            d.ellipse([x - r, y - r, x + r, y + r], fill=col)
            d.line([x, y - r, cx, cy - s * 0.9], fill=acc, width=4)
    img = img.rotate(rng.uniform(-30, 30), resample=Image.Resampling.BILINEAR, fillcolor=(252, 252, 252))
    return img.resize((SIZE, SIZE), Image.Resampling.LANCZOS).filter(ImageFilter.SMOOTH)


def generate(out_dir: str | Path, images: int, classes: int = len(CLASSES), seed: int = 0,
             test_fraction: float = 0.25) -> list[Path]:
    """Write ``images`` JPEGs spread over ``classes`` labels and the Training/Test splits.

    Idempotent: files that already exist are kept, so re-running with a larger N only adds.
    """
    if not 1 <= classes <= len(CLASSES):
        raise ValueError(f"classes must be between 1 and {len(CLASSES)}")
    out = Path(out_dir)
    written: list[Path] = []
    for i in range(images):
        style = CLASSES[i % classes]
        n = i // classes
        split = "Test" if (n % round(1 / test_fraction)) == 0 else "Training"
        path = out / split / style.label / f"{n}_100.jpg"
        written.append(path)
        if path.exists():
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        rng = random.Random(f"{seed}-{style.label}-{n}")
        draw_fruit(style, rng).save(path, "JPEG", quality=92)
    return written


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("directory")
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--classes", type=int, default=len(CLASSES))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    paths = generate(args.directory, args.images, args.classes, args.seed)
    print(f"{len(paths)} sample images under {args.directory} ({args.classes} classes)")


if __name__ == "__main__":
    main()
