"""How each kind of value becomes a table commit and is read back. The IO manager, the assets'
readers and the catalog all go through these.

* tables whose files Spark tasks wrote (:class:`NewParts`): committed as they are;
* small tables the driver holds (pandas: the inventory, the rejects): one file replacing the
  previous version's;
* models and documents (``feature_model``: ``model.tflite`` + ``provenance.json``; ``pca_model``:
  ``pca.npz`` + ``pca.json``; ``report``: ``report.ipynb``): one-row-per-file tables
  ``name, sha256, content`` whose bytes are checked against their sha256 on every read, so a
  damaged model can never be reused silently. ``pca.npz`` is NumPy's open format: ``np.load`` on
  the ``content`` cell reads it without this package.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds

from ..analysis.pca import PcaModel, load_npz, save_npz
from .artifacts import ExecutedNotebook, FeatureModelArtifact
from .tables import Lake, Snapshot, TableError

BLOB_SCHEMA = pa.schema([("name", pa.string()), ("sha256", pa.string()), ("content", pa.binary())])


def table_rows(lake: Lake, snap: Snapshot, columns: list[str] | None = None) -> pa.Table:
    """The rows of a committed version (files from the log, page checksums verified)."""
    fs, _ = lake.fs(snap.uri)
    paths = [lake.fs(u)[1] for u in snap.file_uris()]
    if not paths:
        return pa.table({})
    scan = ds.ParquetFragmentScanOptions(page_checksum_verification=True)
    try:
        return ds.dataset(
            paths, filesystem=fs, format=ds.ParquetFileFormat(default_fragment_scan_options=scan)
        ).to_table(columns=columns)
    except (OSError, ValueError) as exc:
        raise TableError(
            f"{snap.asset} version {snap.version}: a committed file cannot be read ({str(exc).splitlines()[0]}); "
            f"run `fruits-assets repair {snap.asset}`"
        ) from None


def read_frame(lake: Lake, snap: Snapshot) -> pd.DataFrame:
    return table_rows(lake, snap).to_pandas()


def part_name(run_id: str) -> str:
    return f"part-{run_id[:8]}-{uuid.uuid4().hex[:6]}-00000.parquet"


# -- models and documents: name -> bytes -------------------------------------------------------


def blobs_of(value: Any) -> dict[str, bytes]:
    if isinstance(value, FeatureModelArtifact):
        return {
            "model.tflite": value.model_bytes,
            "provenance.json": json.dumps(value.provenance, indent=2).encode(),
        }
    if isinstance(value, PcaModel):
        arrays, meta = save_npz(value)
        return {"pca.npz": arrays, "pca.json": meta}
    if isinstance(value, ExecutedNotebook):
        return {"report.ipynb": value.content}
    raise TypeError(f"cannot store a {type(value).__name__}")


def blob_table(blobs: dict[str, bytes]) -> pa.Table:
    names = sorted(blobs)
    return pa.table(
        {
            "name": names,
            "sha256": [hashlib.sha256(blobs[n]).hexdigest() for n in names],
            "content": [blobs[n] for n in names],
        },
        schema=BLOB_SCHEMA,
    )


def read_blobs(lake: Lake, snap: Snapshot) -> dict[str, bytes]:
    """The files of a model or document version, each checked against its recorded sha256."""
    rows = table_rows(lake, snap).to_pydict()
    out = {}
    for name, sha, content in zip(rows.get("name", []), rows.get("sha256", []), rows.get("content", [])):
        if hashlib.sha256(content).hexdigest() != sha:
            raise TableError(
                f"{snap.asset} version {snap.version}: {name} does not match its recorded sha256 (damaged); "
                f"run `fruits-assets repair {snap.asset}`"
            )
        out[name] = content
    return out


def feature_model_from(blobs: dict[str, bytes]) -> FeatureModelArtifact:
    return FeatureModelArtifact(blobs["model.tflite"], json.loads(blobs["provenance.json"]))


def pca_model_from(blobs: dict[str, bytes]) -> PcaModel:
    return load_npz(blobs["pca.npz"], blobs["pca.json"])


def read_model(lake: Lake, snap: Snapshot):
    """A model or document version as its value (FeatureModelArtifact, PcaModel, ExecutedNotebook)."""
    blobs = read_blobs(lake, snap)
    if "model.tflite" in blobs:
        return feature_model_from(blobs)
    if "pca.npz" in blobs:
        return pca_model_from(blobs)
    if "report.ipynb" in blobs:
        return ExecutedNotebook(blobs["report.ipynb"])
    raise TableError(f"{snap.asset} version {snap.version}: not a model table ({', '.join(blobs) or 'no rows'})")
