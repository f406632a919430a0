"""Small PNG charts drawn with Pillow (no plotting dependency), embedded as Markdown in the UI."""

from __future__ import annotations

import base64
import io
from typing import Sequence

from PIL import Image, ImageDraw

W, H, PAD = 560, 320, 44
PALETTE = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
           (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207)]


def _canvas(title: str):
    img = Image.new("RGB", (W, H), "white")
    d = ImageDraw.Draw(img)
    d.text((PAD, 10), title, fill="black")
    d.rectangle([PAD, PAD, W - PAD, H - PAD], outline=(80, 80, 80))
    return img, d


def _png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def markdown_image(png: bytes, alt: str) -> str:
    return f"![{alt}](data:image/png;base64,{base64.b64encode(png).decode()})"


def explained_variance_png(cumulative: Sequence[float], k: int, target: float) -> bytes:
    """Cumulative explained variance against the number of components, with target and chosen k."""
    img, d = _canvas(f"cumulative explained variance (k={k}, target={target})")
    n = max(1, len(cumulative))
    sx = lambda i: PAD + (W - 2 * PAD) * i / n  # noqa: E731
    sy = lambda v: H - PAD - (H - 2 * PAD) * v  # noqa: E731
    d.line([(PAD, sy(target)), (W - PAD, sy(target))], fill=(214, 39, 40), width=1)
    d.line([(sx(k), PAD), (sx(k), H - PAD)], fill=(44, 160, 44), width=1)
    d.line([(sx(i + 1), sy(v)) for i, v in enumerate(cumulative)], fill=(31, 119, 180), width=2)
    for v in (0.0, 0.5, 1.0):
        d.text((6, sy(v) - 6), f"{v:.1f}", fill="black")
    d.text((W - PAD - 20, H - PAD + 6), str(n), fill="black")
    d.text((sx(k) + 3, H - PAD + 6), f"k={k}", fill=(44, 160, 44))
    return _png(img)


def scatter_png(xs: Sequence[float], ys: Sequence[float], labels: Sequence[str], title: str) -> bytes:
    """2-D scatter coloured by label, with a legend (first 10 labels get distinct colours)."""
    img, d = _canvas(title)
    if len(xs):
        x0, x1, y0, y1 = min(xs), max(xs), min(ys), max(ys)
        span_x, span_y = (x1 - x0) or 1.0, (y1 - y0) or 1.0
        names = sorted(set(labels))
        color = {name: PALETTE[i % len(PALETTE)] for i, name in enumerate(names)}
        for x, y, name in zip(xs, ys, labels):
            px = PAD + (W - 2 * PAD - 120) * (x - x0) / span_x
            py = H - PAD - (H - 2 * PAD) * (y - y0) / span_y
            d.ellipse([px - 2, py - 2, px + 2, py + 2], fill=color[name])
        for i, name in enumerate(names[:18]):
            d.rectangle([W - PAD - 110, PAD + 6 + 13 * i, W - PAD - 104, PAD + 12 + 13 * i], fill=color[name])
            d.text((W - PAD - 100, PAD + 2 + 13 * i), name[:16], fill="black")
    return _png(img)
