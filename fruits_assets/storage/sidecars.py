"""Small files that ride in a table version beside its parts (names start with "_", so Spark and
pyarrow skip them when reading the table):

* ``_featurized.json`` and ``_images.parquet`` in image_features: the featurizer key, the content
  key and counts; the (path, fingerprint) of every feature row, which the next incremental run
  compares with the inventory;
* ``_projected.json`` in image_pca: the keys of the model and the feature rows it projected;
* ``_probe.json`` in feature_probe: the probe's numbers and the key of its inputs.
"""

from __future__ import annotations

import json

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from ..analysis.incremental import REJECT_COLUMNS, Previous
from .fs import Location, join, read_bytes, write_bytes
from .parts import write_table

MANIFEST = "_images.parquet"
FEATURIZED = "_featurized.json"
PROJECTED = "_projected.json"
PROBED = "_probe.json"


def write_info(staged_uri: str, name: str, info: dict, location: Location = Location()) -> None:
    write_bytes(join(staged_uri, name), json.dumps(info, indent=2).encode(), location)


def read_info(version_uri: str, name: str, location: Location = Location()) -> dict | None:
    """The sidecar ``name`` of a version, or None when it has none (written by an older layout)."""
    try:
        return json.loads(read_bytes(join(version_uri, name), location))
    except (FileNotFoundError, OSError):
        return None


def write_manifest(staged_uri: str, manifest: pd.DataFrame, info: dict, location: Location = Location()) -> None:
    """image_features' two sidecars: the rows' (path, fingerprint) and ``_featurized.json``."""
    table = pa.Table.from_pandas(manifest[["path", "fingerprint"]].astype(str), preserve_index=False)
    write_table(staged_uri, MANIFEST, table, location)
    write_info(staged_uri, FEATURIZED, info, location)


def load_previous(
    features_uri: str | None, rejects: pd.DataFrame | None, location: Location = Location()
) -> Previous | None:
    """What the published image_features (and image_rejects) hold, for the incremental plan."""
    if features_uri is None:
        return None
    fs, path = location.filesystem(features_uri)
    info = read_info(features_uri, FEATURIZED, location)
    try:
        manifest = pq.read_table(f"{path}/{MANIFEST}", filesystem=fs).to_pandas()
    except (FileNotFoundError, OSError):
        return None  # a version written before incremental runs: featurize everything once
    if info is None:
        return None
    if rejects is None or "fingerprint" not in rejects.columns:
        rejects = pd.DataFrame({c: pd.Series(dtype="object") for c in REJECT_COLUMNS})
    return Previous(
        features_uri,
        info["featurizer_key"] if "featurizer_key" in info else info["model_sha256"],
        manifest,
        rejects[list(REJECT_COLUMNS)],
    )
