"""PCA from moments (count, mean, centred scatter matrix) that Spark tasks compute over their own
rows and the driver merges: the driver holds d x d numbers (1280 x 1280), never the rows.

Pure NumPy. The model is stored in an open format (``.npz`` + JSON, :func:`save_npz`,
:func:`load_npz`) that any NumPy user can read without Spark.

Conventions (README, "PCA model"): components are the eigenvectors of the covariance matrix of
the fitting rows, largest eigenvalue first, each with its largest-magnitude loading positive
(sklearn's ``svd_flip`` convention, so signs are deterministic); a projection is
``((x - mean) / scale) @ components.T`` with ``scale`` = 1, or the per-feature standard
deviation when standardized (features with zero variance keep scale 1).
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field

import numpy as np

from .k_selection import KSelection, select_k


@dataclass
class Moments:
    """Count, mean and centred scatter matrix ``sum (x - mean)(x - mean)^T`` of a set of rows."""

    n: int
    mean: np.ndarray  # float64 (d,)
    scatter: np.ndarray  # float64 (d, d)

    @classmethod
    def empty(cls, dim: int) -> "Moments":
        return cls(0, np.zeros(dim), np.zeros((dim, dim)))

    @classmethod
    def of(cls, rows: np.ndarray) -> "Moments":
        """Moments of a block of rows: centred on the block's own mean, so merging stays exact
        in floating point (no ``E[x^2] - E[x]^2`` cancellation)."""
        rows = np.asarray(rows, dtype=np.float32)
        if rows.shape[0] == 0:
            return cls.empty(rows.shape[1])
        mean = rows.mean(axis=0, dtype=np.float64)
        centred = rows - mean.astype(np.float32)
        # float32 GEMM (BLAS) on centred rows, accumulated in float64 across blocks.
        return cls(rows.shape[0], mean, (centred.T @ centred).astype(np.float64))

    def merge(self, other: "Moments") -> "Moments":
        """Chan et al.'s pairwise update of mean and scatter."""
        if other.n == 0:
            return self
        if self.n == 0:
            return other
        n = self.n + other.n
        delta = other.mean - self.mean
        mean = self.mean + delta * (other.n / n)
        scatter = self.scatter + other.scatter + np.outer(delta, delta) * (self.n * other.n / n)
        return Moments(n, mean, scatter)

    def to_bytes(self) -> bytes:
        buf = io.BytesIO()
        np.savez(buf, n=np.int64(self.n), mean=self.mean, scatter=self.scatter)
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> "Moments":
        with np.load(io.BytesIO(data)) as z:
            return cls(int(z["n"]), z["mean"], z["scatter"])


@dataclass
class PcaModel:
    mean: np.ndarray  # (d,) float64
    scale: np.ndarray  # (d,) float64: 1, or the std when standardized
    components: np.ndarray  # (k, d) float64, rows = principal axes
    explained_variance: np.ndarray  # (min(d, n-1),) eigenvalues, largest first
    explained_variance_ratio: np.ndarray
    selection: KSelection
    standardized: bool
    fitted_on: str = ""
    fit_rows: int = 0
    extra: dict = field(default_factory=dict)

    @property
    def k(self) -> int:
        return int(self.components.shape[0])

    def project(self, rows: np.ndarray) -> np.ndarray:
        """float32 (n, k) projections of float32 (n, d) rows."""
        centred = (np.asarray(rows, dtype=np.float64) - self.mean) / self.scale
        return (centred @ self.components.T).astype(np.float32)


def fit(moments: Moments, target: float, max_k: int, standardize: bool = False, fitted_on: str = "") -> PcaModel:
    if moments.n < 2:
        raise ValueError(f"PCA needs at least 2 feature rows to fit, got {moments.n}")
    cov = moments.scatter / (moments.n - 1)
    scale = np.ones(cov.shape[0])
    if standardize:
        std = np.sqrt(np.clip(np.diag(cov), 0.0, None))
        scale = np.where(std > 0, std, 1.0)
        cov = cov / np.outer(scale, scale)
    values, vectors = np.linalg.eigh(cov)  # ascending; symmetric solver (LAPACK syevd)
    order = np.argsort(values)[::-1]
    values = np.clip(values[order], 0.0, None)
    vectors = vectors[:, order]
    available = min(cov.shape[0], moments.n - 1)  # rank of n centred rows
    values, vectors = values[:available], vectors[:, :available]
    total = float(values.sum())
    ratios = values / total if total > 0 else np.zeros_like(values)
    selection = select_k(ratios, target, max_k)
    components = vectors[:, : selection.k].T.copy()
    flip = np.sign(components[np.arange(selection.k), np.argmax(np.abs(components), axis=1)])
    components *= np.where(flip == 0, 1.0, flip)[:, None]
    return PcaModel(
        moments.mean.copy(), scale, components, values, ratios, selection, standardize, fitted_on, moments.n
    )


def save_npz(model: PcaModel) -> tuple[bytes, bytes]:
    """(``pca.npz`` bytes, ``pca.json`` bytes): arrays in NumPy's open format, the rest as JSON."""
    buf = io.BytesIO()
    np.savez(
        buf,
        mean=model.mean,
        scale=model.scale,
        components=model.components,
        explained_variance=model.explained_variance,
        explained_variance_ratio=model.explained_variance_ratio,
    )
    s = model.selection
    meta = {
        "k": model.k,
        "dim": int(model.mean.shape[0]),
        "standardized": model.standardized,
        "fitted_on": model.fitted_on,
        "fit_rows": model.fit_rows,
        "selection": {
            "k": s.k,
            "explained_variance": s.explained_variance,
            "target": s.target,
            "reached": s.reached,
            "reason": s.reason,
        },
        "projection": "((x - mean) / scale) @ components.T",
        **model.extra,
    }
    return buf.getvalue(), json.dumps(meta, indent=2).encode()


def load_npz(npz: bytes, meta: bytes) -> PcaModel:
    info = json.loads(meta)
    with np.load(io.BytesIO(npz)) as z:
        arrays = {k: z[k] for k in z.files}
    s = info["selection"]
    extra = {
        k: v
        for k, v in info.items()
        if k not in {"k", "dim", "standardized", "fitted_on", "fit_rows", "selection", "projection"}
    }
    return PcaModel(
        arrays["mean"],
        arrays["scale"],
        arrays["components"],
        arrays["explained_variance"],
        arrays["explained_variance_ratio"],
        KSelection(s["k"], s["explained_variance"], s["target"], s["reached"], s["reason"]),
        info["standardized"],
        info.get("fitted_on", ""),
        info.get("fit_rows", 0),
        extra,
    )
