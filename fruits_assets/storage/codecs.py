"""One codec per stored kind: how a value is written into a version folder and read back. The IO
manager, the published-output readers of the assets and the catalog all go through these, so the
file names of a stored kind exist here only.

Kinds (recorded with each version, see storage/ledger.py):

* ``feature_model``: ``model.tflite`` (the LiteRT flatbuffer) + ``provenance.json``;
* ``pca_npz``: ``pca.npz`` (mean, scale, components, explained variance) + ``pca.json``
  (k, selection, fit rows), readable without this package (README "Outputs");
* ``spark_parquet``: parquet parts that Spark tasks staged themselves, moved in as a whole;
* ``parquet``: a small table the driver holds (pandas), one part.
"""

from __future__ import annotations

import json
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from ..analysis.pca import PcaModel, load_npz, save_npz
from .artifacts import ExecutedNotebook, FeatureModelArtifact, StagedParquet
from .fs import ensure_dir, join
from .parts import PART_NAME
from .versions import VersionedStore

Columns = tuple[tuple[str, str], ...]


class FeatureModelCodec:
    kind = "feature_model"
    model_file = "model.tflite"
    provenance_file = "provenance.json"

    def write(self, store: VersionedStore, uri: str, value: FeatureModelArtifact) -> Columns:
        store.write_bytes(join(uri, self.model_file), value.model_bytes)
        store.write_bytes(join(uri, self.provenance_file), json.dumps(value.provenance, indent=2).encode())
        return ()

    def read(self, store: VersionedStore, uri: str) -> FeatureModelArtifact:
        provenance = json.loads(store.read_bytes(join(uri, self.provenance_file)))
        return FeatureModelArtifact(store.read_bytes(join(uri, self.model_file)), provenance)


class PcaCodec:
    kind = "pca_npz"
    arrays_file = "pca.npz"  # mean, scale, components, explained variance: analysis.pca.load_npz
    meta_file = "pca.json"

    def write(self, store: VersionedStore, uri: str, value: PcaModel) -> Columns:
        arrays, meta = save_npz(value)
        store.write_bytes(join(uri, self.arrays_file), arrays)
        store.write_bytes(join(uri, self.meta_file), meta)
        return ()

    def read(self, store: VersionedStore, uri: str) -> PcaModel:
        return load_npz(store.read_bytes(join(uri, self.arrays_file)), store.read_bytes(join(uri, self.meta_file)))


class NotebookCodec:
    kind = "notebook"
    file = "report.ipynb"

    def write(self, store: VersionedStore, uri: str, value: ExecutedNotebook) -> Columns:
        store.write_bytes(join(uri, self.file), value.content)
        return ()

    def read(self, store: VersionedStore, uri: str) -> ExecutedNotebook:
        return ExecutedNotebook(store.read_bytes(join(uri, self.file)))


class StagedPartsCodec:
    """Parts written by Spark tasks into a staging folder: the folder becomes the version."""

    kind = "spark_parquet"

    def write(self, store: VersionedStore, uri: str, value: StagedParquet) -> Columns:
        store.adopt(value.uri, uri)
        return value.columns

    def read(self, store: VersionedStore, uri: str) -> pd.DataFrame:
        return read_table(store, uri)


class PandasCodec:
    kind = "parquet"

    def write(self, store: VersionedStore, uri: str, value: pd.DataFrame) -> Columns:
        fs, path = store.fs(uri)
        ensure_dir(fs, path, uri)
        pq.write_table(
            pa.Table.from_pandas(value, preserve_index=False), f"{path}/{PART_NAME.format(0)}", filesystem=fs
        )
        return tuple((str(c), str(t)) for c, t in value.dtypes.items())

    def read(self, store: VersionedStore, uri: str) -> pd.DataFrame:
        return read_table(store, uri)


def read_table(store: VersionedStore, uri: str) -> pd.DataFrame:
    """A table version as pandas. Sidecars (``_images.parquet``, ``_PUBLISHED.json``, ``_figures/``)
    start with "_": the dataset skips them."""
    fs, path = store.fs(uri)
    return ds.dataset(path, filesystem=fs, format="parquet").to_table().to_pandas()


FEATURE_MODEL, PCA, STAGED_PARTS, PANDAS = FeatureModelCodec(), PcaCodec(), StagedPartsCodec(), PandasCodec()
NOTEBOOK = NotebookCodec()
BY_KIND: dict[str, Any] = {c.kind: c for c in (FEATURE_MODEL, PCA, STAGED_PARTS, PANDAS, NOTEBOOK)}
TABLE_KINDS = (STAGED_PARTS.kind, PANDAS.kind)


def codec_for_value(value: object):
    """The codec that stores ``value`` (TypeError for anything else)."""
    for typ, codec in (
        (StagedParquet, STAGED_PARTS),
        (pd.DataFrame, PANDAS),
        (FeatureModelArtifact, FEATURE_MODEL),
        (PcaModel, PCA),
        (ExecutedNotebook, NOTEBOOK),
    ):
        if isinstance(value, typ):
            return codec
    raise TypeError(f"cannot store a {type(value).__name__}")


def codec_for_kind(kind: str | None, where: str):
    codec = BY_KIND.get(kind or "")
    if codec is None:
        raise TypeError(f"unknown stored kind {kind!r} in {where}: materialize it again")
    return codec
