"""PCA over the published feature parts with Spark tasks and NumPy: tasks read their parquet row
groups straight from storage (no JVM rows of 1,280 floats), return small moments or write their
own projected parts; the driver merges d x d moments and runs one eigendecomposition.

Measured against Spark ML's two fits (probe at up to 512 components, then a refit), the JVM SVD
without native BLAS and the JVM round trip of every vector (README, "Performance").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import numpy as np
import pandas as pd
import pyarrow as pa

from ..analysis.pca import Moments, PcaModel, fit
from ..storage.fs import Location
from ..storage.parts import PartWriter, part_uri
from .featurize import _partition_id

PCA_SCHEMA = pa.schema(
    [
        ("path", pa.string()),
        ("label", pa.string()),
        ("split", pa.string()),
        ("pca", pa.list_(pa.field("element", pa.float32()))),
    ]
)
FIT_SPLIT = "Training"
SCATTER_POINTS = 3000
_PROJECT_DDL = "rows long, non_finite long, bad_dims long, x float, y float, label string"


@dataclass(frozen=True)
class RowGroup:
    path: str  # file path inside its filesystem (no scheme)
    index: int
    rows: int


def row_groups(files: list[str], location: Location) -> list[RowGroup]:
    """Every row group of a table version's files (URIs, from the log), from their footers (the
    work units)."""
    import pyarrow.parquet as pq

    units = []
    for uri in files:
        fs, part = location.filesystem(uri)
        with fs.open_input_file(part) as fh:
            meta = pq.ParquetFile(fh).metadata
            units += [RowGroup(part, g, meta.row_group(g).num_rows) for g in range(meta.num_row_groups)]
    return units


def _matrix(vectors: pa.ChunkedArray | pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """(float32 (n, d) matrix of the rows whose length is the most common one, boolean mask of those rows)."""
    if isinstance(vectors, pa.ChunkedArray):
        vectors = vectors.combine_chunks()
    lengths = np.diff(vectors.offsets.to_numpy())
    if len(lengths) == 0:
        return np.empty((0, 0), dtype=np.float32), np.zeros(0, dtype=bool)
    dim = int(np.bincount(lengths).argmax())
    ok = lengths == dim
    flat = vectors.flatten().to_numpy(zero_copy_only=False).astype(np.float32, copy=False)
    if ok.all():
        return flat.reshape(len(lengths), dim), ok
    starts = vectors.offsets.to_numpy()[:-1][ok]
    return np.stack([flat[s : s + dim] for s in starts - vectors.offsets[0].as_py()]), ok


def _units_frame(spark, units: list[RowGroup]):
    frame = pd.DataFrame({"path": [u.path for u in units], "index": [u.index for u in units]})
    parts = max(1, min(len(units), spark.sparkContext.defaultParallelism))
    return spark.createDataFrame(frame).repartition(parts)


def _read(fs, unit_path: str, index: int, columns: list[str]) -> pa.Table:
    import pyarrow.parquet as pq

    with fs.open_input_file(unit_path) as fh:  # page checksums verified: damage fails, never hides
        return pq.ParquetFile(fh, page_checksum_verification=True).read_row_group(index, columns=columns)


def moments(spark, files: list[str], location: Location) -> tuple[Moments, Moments]:
    """(moments of the Training rows, moments of the others), one pass over the files."""
    units = row_groups(files, location)
    if not units or sum(u.rows for u in units) == 0:
        return Moments.empty(0), Moments.empty(0)
    store_uri = files[0]

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        fs = location.filesystem(store_uri)[0]
        train = other = None
        for batch in batches:
            for unit_path, index in zip(batch.column("path").to_pylist(), batch.column("index").to_pylist()):
                table = _read(fs, unit_path, index, ["split", "features"])
                matrix, ok = _matrix(table.column("features"))
                is_train = np.asarray(table.column("split").to_pylist(), dtype=object)[ok] == FIT_SPLIT
                for rows, name in ((matrix[is_train], "train"), (matrix[~is_train], "other")):
                    m = Moments.of(rows) if len(rows) else None
                    if m is None:
                        continue
                    if name == "train":
                        train = m if train is None else train.merge(m)
                    else:
                        other = m if other is None else other.merge(m)
        yield pa.RecordBatch.from_pydict(
            {"train": [train.to_bytes() if train else None], "other": [other.to_bytes() if other else None]},
            schema=pa.schema([("train", pa.binary()), ("other", pa.binary())]),
        )

    rows = _units_frame(spark, units).mapInArrow(run, "train binary, other binary").collect()
    train = other = None
    for row in rows:
        for blob, which in ((row["train"], "train"), (row["other"], "other")):
            if blob is None:
                continue
            m = Moments.from_bytes(bytes(blob))
            if which == "train":
                train = m if train is None else train.merge(m)
            else:
                other = m if other is None else other.merge(m)
    first = train or other
    if first is None:
        raise ValueError(f"no feature rows in {len(files)} files")
    dim = first.mean.shape[0]
    return train or Moments.empty(dim), other or Moments.empty(dim)


@dataclass
class PcaFit:
    model: PcaModel
    moments_seconds: float
    eig_seconds: float


def fit_pca(spark, files: list[str], location: Location, target: float, max_k: int, standardize: bool) -> PcaFit:
    """Fit on the Training split when it has rows (all rows otherwise); k from the target."""
    import time

    started = time.perf_counter()
    train, other = moments(spark, files, location)
    middle = time.perf_counter()
    if train.n >= 2:
        model = fit(train, target, max_k, standardize, "Training split")
    else:
        model = fit(train.merge(other), target, max_k, standardize, "all rows")
    return PcaFit(model, middle - started, time.perf_counter() - middle)


def project(
    spark,
    files: list[str],
    location: Location,
    model: PcaModel,
    out_prefix: str,
    out_at: Location,
    row_group_rows: int = 8192,
) -> pd.DataFrame:
    """Every feature row projected, written by the tasks as parquet parts ``<out_prefix>-<n>.parquet``
    (``path, label, split, pca float[k]``); returns per-task counts and a scatter sample."""
    units = row_groups(files, location)
    n_tasks = max(1, min(len(units), spark.sparkContext.defaultParallelism))
    per_task_points = max(1, SCATTER_POINTS // n_tasks)
    store_uri = files[0] if files else out_prefix

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        fs = location.filesystem(store_uri)[0]
        writer = PartWriter(part_uri(out_prefix, _partition_id()), out_at, row_group_rows, PCA_SCHEMA)
        rows = non_finite = bad = 0
        xs: list[float] = []
        ys: list[float] = []
        labels: list[str] = []
        for batch in batches:
            for unit_path, index in zip(batch.column("path").to_pylist(), batch.column("index").to_pylist()):
                table = _read(fs, unit_path, index, ["path", "label", "split", "features"])
                matrix, ok = _matrix(table.column("features"))
                bad += int((~ok).sum())
                keep = np.nonzero(ok)[0]
                if matrix.shape[0] and matrix.shape[1] != model.mean.shape[0]:
                    bad += len(keep)
                    continue
                projected = model.project(matrix) if len(keep) else np.empty((0, model.k), np.float32)
                non_finite += int((~np.isfinite(projected).all(axis=1)).sum())
                paths, labels_, splits = (
                    table.column(c).take(pa.array(keep)).to_pylist() for c in ("path", "label", "split")
                )
                writer.add([paths, labels_, splits], projected)
                rows += len(keep)
                room = per_task_points - len(xs)
                if room > 0 and len(keep):
                    xs += projected[:room, 0].tolist()
                    ys += projected[:room, 1 if model.k > 1 else 0].tolist()
                    labels += labels_[:room]
        writer.close()
        yield pa.RecordBatch.from_pydict(
            {
                "rows": [rows] + [0] * len(xs),
                "non_finite": [non_finite] + [0] * len(xs),
                "bad_dims": [bad] + [0] * len(xs),
                "x": [None] + xs,
                "y": [None] + ys,
                "label": [None] + labels,
            },
            schema=pa.schema(
                [
                    ("rows", pa.int64()),
                    ("non_finite", pa.int64()),
                    ("bad_dims", pa.int64()),
                    ("x", pa.float32()),
                    ("y", pa.float32()),
                    ("label", pa.string()),
                ]
            ),
        )

    if not units:
        return pd.DataFrame(columns=["rows", "non_finite", "bad_dims", "x", "y", "label"])
    return _units_frame(spark, units).mapInArrow(run, _PROJECT_DDL).toPandas()
