"""Charts for the UI and for files beside each version: matplotlib (Agg), DejaVu Sans (full Latin
coverage: "Clémentine" stays "Clémentine"), titled axes with units, labelled reference lines.

PNG bytes are returned; the asset embeds them in Markdown for the UI and writes them next to
the version (path in metadata) so they open outside Dagster too.
"""

from __future__ import annotations

import base64
import io
from typing import Sequence

import numpy as np

TOP_CLASSES = 12  # coloured in the scatter; the others are grey "other"
DPI = 100


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # no display: the webserver and EMR have none
    import matplotlib.pyplot as plt

    plt.rcParams.update({"font.family": "DejaVu Sans", "font.size": 10, "axes.titlesize": 11})
    return plt


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight")
    _pyplot().close(fig)
    return buf.getvalue()


def markdown_image(png: bytes, alt: str) -> str:
    return f"![{alt}](data:image/png;base64,{base64.b64encode(png).decode()})"


def explained_variance_png(cumulative: Sequence[float], k: int, target: float) -> bytes:
    """Cumulative explained variance (%) against the number of components, target and k labelled."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    n = np.arange(1, len(cumulative) + 1)
    ax.plot(n, np.asarray(cumulative) * 100, color="#1f77b4", lw=2, label="cumulative explained variance")
    ax.axhline(target * 100, color="#d62728", ls="--", lw=1, label=f"target {target * 100:.0f} %")
    reached = cumulative[k - 1] * 100 if 0 < k <= len(cumulative) else float("nan")
    ax.axvline(k, color="#2ca02c", ls=":", lw=1.5, label=f"k = {k} ({reached:.1f} %)")
    ax.set_xlabel("number of components")
    ax.set_ylabel("explained variance (%)")
    ax.set_ylim(0, 101)
    ax.set_xlim(0, max(len(cumulative), k) + 1)
    ax.set_title("PCA: cumulative explained variance")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=9)
    return _png(fig)


def scatter_png(
    xs: Sequence[float],
    ys: Sequence[float],
    labels: Sequence[str],
    title: str,
    ratios: Sequence[float] | np.ndarray = (),
) -> bytes:
    """PC1 vs PC2: the largest classes coloured, the rest grey "other"; translucent points drawn in
    a shuffled order (no class hides behind another), legend outside the axes with "+N more"."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7.6, 4.6))
    shown = np.asarray([str(v) for v in labels], dtype=object)
    names, counts = np.unique(shown, return_counts=True) if len(shown) else (np.array([]), np.array([]))
    top = [str(n) for n in names[np.argsort(-counts, kind="stable")][:TOP_CLASSES]]
    colours = plt.get_cmap("tab20").colors
    colour_of = {name: colours[i % len(colours)] for i, name in enumerate(top)}
    order = np.random.default_rng(0).permutation(len(shown))
    x, y, lab = np.asarray(xs)[order], np.asarray(ys)[order], shown[order]
    grey = (0.6, 0.6, 0.6)
    ax.scatter(x, y, s=9, alpha=0.55, linewidths=0, c=[colour_of.get(v, grey) for v in lab])
    handles = [plt.Line2D([], [], marker="o", ls="", color=colour_of[n], label=n) for n in top]
    others = len(names) - len(top)
    if others > 0:
        handles.append(plt.Line2D([], [], marker="o", ls="", color=grey, label=f"other (+{others} more)"))
    if handles:
        ax.legend(
            handles=handles,
            loc="upper left",
            bbox_to_anchor=(1.01, 1.0),
            fontsize=8,
            frameon=False,
            title=f"{len(names)} classes",
            title_fontsize=9,
        )
    pct = [f" ({r * 100:.1f} % of variance)" for r in list(ratios)[:2]] + ["", ""]
    ax.set_xlabel(f"PC1{pct[0]}")
    ax.set_ylabel(f"PC2{pct[1]}")
    ax.set_title(f"{title} ({len(labels):,} images shown)")
    ax.grid(alpha=0.3)
    return _png(fig)


def confusion_png(labels: Sequence[str], counts, accuracy: float | None, classes: int) -> bytes:
    """Confusion counts among the classes most often mistaken for one another (a 131 x 131 matrix
    is unreadable): true class down, predicted across, counts written in the cells."""
    plt = _pyplot()
    counts = np.asarray(counts, dtype=int).reshape(len(labels), len(labels))
    side = max(3.6, 0.45 * len(labels) + 2.2)
    fig, ax = plt.subplots(figsize=(side + 1.0, side))
    title = f"Linear probe: confusions among the {len(labels)} most confused of {classes} classes"
    if accuracy is not None:
        title += f"\n(test accuracy {accuracy * 100:.1f} %)"
    ax.set_title(title)
    if len(labels) == 0:
        ax.text(0.5, 0.5, "no misclassified rows", ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
        return _png(fig)
    image = ax.imshow(counts, cmap="Blues")
    ax.set_xticks(range(len(labels)), labels, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(len(labels)), labels, fontsize=8)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    top = counts.max() if counts.size else 0
    for (i, j), n in np.ndenumerate(counts):
        if n:
            ax.text(j, i, str(n), ha="center", va="center", fontsize=7, color="white" if n > top / 2 else "black")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="evaluated images")
    return _png(fig)
