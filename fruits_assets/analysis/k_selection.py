"""Choosing the number of PCA components from explained-variance ratios (pure NumPy)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class KSelection:
    k: int
    explained_variance: float  # cumulative ratio kept by the first k components
    target: float
    reached: bool
    reason: str


def select_k(ratios, target: float = 0.95, max_k: int | None = None) -> KSelection:
    """Smallest k whose cumulative explained-variance ratio reaches ``target``.

    ``ratios`` are per-component shares of the *total* variance, largest first (they may sum to
    less than 1 when only the leading components were computed). When the target cannot be
    reached within ``max_k`` (or the components given), k is the cap and ``reached`` is False:
    never a silent k=1.
    """
    if not 0.0 < target <= 1.0:
        raise ValueError(f"explained-variance target must be in (0, 1], got {target}")
    r = np.asarray(ratios, dtype=np.float64)
    if r.ndim != 1 or r.size == 0:
        raise ValueError("no explained-variance ratios: PCA needs at least one component")
    if not np.all(np.isfinite(r)) or np.any(r < -1e-9):
        raise ValueError("explained-variance ratios must be finite and non-negative")
    cap = r.size if max_k is None else min(int(max_k), r.size)
    if cap < 1:
        raise ValueError(f"max_k must be >= 1, got {max_k}")
    cumulative = np.cumsum(r[:cap])
    # A small tolerance: ratios that sum to 1 in exact arithmetic land at 0.9999999 in floats.
    hits = np.nonzero(cumulative >= target - 1e-9)[0]
    if hits.size:
        k = int(hits[0]) + 1
        return KSelection(
            k,
            float(cumulative[k - 1]),
            target,
            True,
            f"{k} components explain {cumulative[k - 1]:.4f} >= target {target}",
        )
    return KSelection(
        cap,
        float(cumulative[-1]),
        target,
        False,
        f"target {target} not reached: the {cap} components allowed "
        f"(max_k={max_k}, available={r.size}) explain only {cumulative[-1]:.4f}",
    )
