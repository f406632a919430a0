"""Fruits-360-shaped sample images: ``<dir>/Training|Test/<Label>/<i>_100.jpg``, 100x100 JPEG.

Usage: ``python -m fruits_assets.images.sample_data DIR --images N [--classes C] [--seed S]``
(``--classes 131 --images 90483`` gives the full Fruits-360 shape).
Classes differ visibly (colour, shape, texture) so features and PCA have real structure; labels
are Fruits-360's own 131 names (with spaces), "Clementine" spelled "Clémentine" so one is
non-ASCII, as real collections can be.
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


# Fruits-360's 131 labels (the 2020 release); the first 10 are drawn by CLASSES above.
FRUITS_360_LABELS = (
    "Apple Braeburn, Apple Crimson Snow, Apple Golden 1, Apple Golden 2, Apple Golden 3, Apple Granny Smith, "
    "Apple Pink Lady, Apple Red 1, Apple Red 2, Apple Red 3, Apple Red Delicious, Apple Red Yellow 1, "
    "Apple Red Yellow 2, Apricot, Avocado, Avocado ripe, Banana, Banana Lady Finger, Banana Red, Beetroot, "
    "Blueberry, Cactus fruit, Cantaloupe 1, Cantaloupe 2, Carambula, Cauliflower, Cherry 1, Cherry 2, "
    "Cherry Rainier, Cherry Wax Black, Cherry Wax Red, Cherry Wax Yellow, Chestnut, Clementine, Cocos, Corn, "
    "Corn Husk, Cucumber Ripe, Cucumber Ripe 2, Dates, Eggplant, Fig, Ginger Root, Granadilla, Grape Blue, "
    "Grape Pink, Grape White, Grape White 2, Grape White 3, Grape White 4, Grapefruit Pink, Grapefruit White, "
    "Guava, Hazelnut, Huckleberry, Kaki, Kiwi, Kohlrabi, Kumquats, Lemon, Lemon Meyer, Limes, Lychee, "
    "Mandarine, Mango, Mango Red, Mangostan, Maracuja, Melon Piel de Sapo, Mulberry, Nectarine, "
    "Nectarine Flat, Nut Forest, Nut Pecan, Onion Red, Onion Red Peeled, Onion White, Orange, Papaya, "
    "Passion Fruit, Peach, Peach 2, Peach Flat, Pear, Pear 2, Pear Abate, Pear Forelle, Pear Kaiser, "
    "Pear Monster, Pear Red, Pear Stone, Pear Williams, Pepino, Pepper Green, Pepper Orange, Pepper Red, "
    "Pepper Yellow, Physalis, Physalis with Husk, Pineapple, Pineapple Mini, Pitahaya Red, Plum, Plum 2, "
    "Plum 3, Pomegranate, Pomelo Sweetie, Potato Red, Potato Red Washed, Potato Sweet, Potato White, Quince, "
    "Rambutan, Raspberry, Redcurrant, Salak, Strawberry, Strawberry Wedge, Tamarillo, Tangelo, Tomato 1, "
    "Tomato 2, Tomato 3, Tomato 4, Tomato Cherry Red, Tomato Heart, Tomato Maroon, Tomato Yellow, "
    "Tomato not Ripened, Walnut, Watermelon"
).split(", ")
SHAPES = ("round", "oval", "long", "pear", "cluster", "pair", "spotted")


def _style_for(label: str) -> FruitStyle:
    """A stable, visibly distinct style for a label beyond the 10 hand-made ones."""
    rng = random.Random(f"style-{label}")
    color = tuple(rng.randint(20, 245) for _ in range(3))
    accent = tuple(rng.randint(10, 240) for _ in range(3))
    return FruitStyle(label, color, rng.choice(SHAPES), accent)  # type: ignore[arg-type]


_BASE = {c.label for c in CLASSES} | {"Clementine"}
ALL_CLASSES = CLASSES + tuple(_style_for(name) for name in FRUITS_360_LABELS if name not in _BASE)
MAX_CLASSES = len(ALL_CLASSES)  # 131, as Fruits-360


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


def generate(
    out_dir: str | Path, images: int, classes: int = len(CLASSES), seed: int = 0, test_fraction: float = 0.25
) -> list[Path]:
    """Write ``images`` JPEGs spread over ``classes`` labels and the Training/Test splits.

    Idempotent: files that already exist are kept, so re-running with a larger N only adds.
    """
    if not 1 <= classes <= MAX_CLASSES:
        raise ValueError(f"--classes must be between 1 and {MAX_CLASSES} (Fruits-360 has 131), got {classes}")
    if images < 1:
        raise ValueError(f"--images must be >= 1, got {images}")
    out = Path(out_dir)
    written: list[Path] = []
    for i in range(images):
        style = ALL_CLASSES[i % classes]
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m fruits_assets.images.sample_data",
        description="Write Fruits-360-shaped sample JPEGs (100x100) under DIRECTORY/Training|Test/<Label>/. "
        "Idempotent: existing files are kept, a larger --images only adds.",
        epilog="The real data set's shape: --classes 131 --images 90483.",
    )
    parser.add_argument("directory", help="output folder (created if missing)")
    parser.add_argument(
        "--images", type=int, default=200, help="total number of images, spread evenly over the classes (default 200)"
    )
    parser.add_argument(
        "--classes",
        type=int,
        default=len(CLASSES),
        help=f"number of classes, 1 to {MAX_CLASSES}: Fruits-360's labels in order, the first 10 "
        f"drawn by hand (default {len(CLASSES)})",
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed of the drawings (default 0)")
    parser.add_argument(
        "--test-fraction",
        type=float,
        default=0.25,
        help="share of each class in Test/ (Fruits-360: 22,688 of 90,483 = 0.25; default 0.25)",
    )
    args = parser.parse_args(argv)
    if not 0 < args.test_fraction < 1:
        parser.error(f"--test-fraction must be between 0 and 1, got {args.test_fraction}")
    try:
        paths = generate(args.directory, args.images, args.classes, args.seed, args.test_fraction)
    except ValueError as exc:
        parser.error(str(exc))  # one line and exit status 2, no traceback
    print(f"{len(paths)} sample images under {args.directory} ({args.classes} classes)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
