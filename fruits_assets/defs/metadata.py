"""Tables for the UI (``MetadataValue.table`` with a schema): per-class counts with totals,
previews of the first rows with vectors abbreviated, lists of rejected or skipped files."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
from dagster import MetadataValue, TableColumn, TableRecord, TableSchema

from ..images.layout import relative_image_path
from ..storage.fs import Location

PREVIEW_ROWS = 10


def _cell(value):
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return round(float(value), 4)
    return value


def relative(path: object, root: str | None) -> object:
    """A path as the UI shows it: relative to the image root (given once, beside the table)."""
    if root is None or not isinstance(path, str):
        return path
    try:
        return relative_image_path(path, root)
    except ValueError:
        return path


def table(
    frame: pd.DataFrame, types: dict[str, str], limit: int | None = None, root: str | None = None
) -> MetadataValue:
    """``frame``'s columns named in ``types`` (name -> "string" | "int" | "float"), at most ``limit`` rows;
    with ``root``, the ``path`` column relative to it (the full paths would push the others off-screen)."""
    shown = frame if limit is None else frame.head(limit)
    if root is not None and "path" in shown.columns:
        shown = shown.assign(path=shown["path"].map(lambda p: relative(p, root)))
    records = [
        TableRecord({c: _cell(v) for c, v in zip(types, row)})
        for row in shown[list(types)].itertuples(index=False, name=None)
    ]
    return MetadataValue.table(
        records=records, schema=TableSchema(columns=[TableColumn(c, t) for c, t in types.items()])
    )


def per_class_counts(counts: list[tuple]) -> MetadataValue:
    """One row per class: total, Training, Test, from (label, split, images) counts (label and split
    None: not in the layout); the first row holds the totals."""
    frame = pd.DataFrame(counts, columns=["label", "split", "n"])
    frame = frame[frame["n"] > 0]
    labelled = frame.assign(
        label=frame["label"].fillna("(not in <split>/<label>/)"), split=frame["split"].fillna("(none)")
    )
    grid = labelled.pivot_table(index="label", columns="split", values="n", aggfunc="sum", fill_value=0)
    grid.columns.name = "split"
    for split in ("Training", "Test"):
        if split not in grid.columns:
            grid[split] = 0
    grid["other"] = grid.drop(columns=["Training", "Test"]).sum(axis=1)
    grid["total"] = grid[["Training", "Test", "other"]].sum(axis=1)
    grid = grid.reset_index().sort_values("label", key=lambda s: s.str.lower(), ignore_index=True)
    totals = pd.DataFrame(
        [
            {
                "label": f"ALL ({len(grid)} classes)",
                "Training": grid["Training"].sum(),
                "Test": grid["Test"].sum(),
                "other": grid["other"].sum(),
                "total": grid["total"].sum(),
            }
        ]
    )
    frame = pd.concat([totals, grid], ignore_index=True)
    # The total right after the label: the lineage's narrow side panel shows the first columns.
    types = {"label": "string", "total": "int", "Training": "int", "Test": "int"}
    if frame["other"].sum():
        types = {"label": "string", "total": "int", "Training": "int", "Test": "int", "other": "int"}
    return table(frame, types)


def abbreviate(vector, shown: int = 4) -> str:
    values = np.asarray(vector, dtype=np.float32)
    head = ", ".join(f"{v:.3f}" for v in values[:shown])
    return f"[{head}, … ({len(values)} values)]" if len(values) > shown else f"[{head}]"


def preview_parts(
    files: list[str], location: Location, vector: str, rows: int = PREVIEW_ROWS, root: str | None = None
) -> MetadataValue:
    """The first rows of a table's files (path, label, split, abbreviated vector)."""
    frames = []
    for uri in files:
        fs, part = location.filesystem(uri)
        with fs.open_input_file(part) as fh:
            pf = pq.ParquetFile(fh)
            if pf.metadata.num_rows:
                frames.append(
                    next(pf.iter_batches(batch_size=rows, columns=["path", "label", "split", vector])).to_pandas()
                )
        if sum(len(f) for f in frames) >= rows:
            break
    head = (
        pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["path", "label", "split", vector])
    ).head(rows)
    head[vector] = head[vector].map(abbreviate)
    return table(head, {"path": "string", "label": "string", "split": "string", vector: "string"}, root=root)


def sample_points(files: list[str], location: Location, limit: int) -> pd.DataFrame:
    """x = PC1, y = PC2, label of the first ``limit`` rows spread over the files (for the scatter
    of a projection carried over from the committed version)."""
    per_part, frames = max(1, limit // max(1, len(files))), []
    for uri in files:
        fs, part = location.filesystem(uri)
        with fs.open_input_file(part) as fh:
            pf = pq.ParquetFile(fh)
            if pf.metadata.num_rows:
                batch = next(pf.iter_batches(batch_size=per_part, columns=["label", "pca"])).to_pandas()
                frames.append(
                    pd.DataFrame(
                        {
                            "x": [v[0] for v in batch["pca"]],
                            "y": [v[1] if len(v) > 1 else v[0] for v in batch["pca"]],
                            "label": batch["label"],
                        }
                    )
                )
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["x", "y", "label"])
