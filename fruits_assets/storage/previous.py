"""What the committed image_features (and image_rejects) hold, for the incremental plan: the
(path, fingerprint) of every feature row, file by file, read from the files the log lists."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import pyarrow.parquet as pq

from ..analysis.incremental import REJECT_COLUMNS, Previous
from .tables import Lake, Snapshot, TableError


@dataclass(frozen=True)
class PreviousFeatures:
    previous: Previous
    rows_by_file: list[tuple[str, list[str]]]  # (file URI, its row paths), in snapshot order


def load_previous(lake: Lake, features: Snapshot | None, rejects: pd.DataFrame | None) -> PreviousFeatures | None:
    """None when there is nothing to build on (no table, or one without a featurizer key)."""
    if features is None or "featurizer_key" not in features.info:
        return None
    frames, rows_by_file = [], []
    for uri in features.file_uris():
        fs, path = lake.fs(uri)
        try:
            table = pq.read_table(path, filesystem=fs, columns=["path", "fingerprint"], page_checksum_verification=True)
        except (OSError, ValueError) as exc:
            raise TableError(
                f"{features.asset} version {features.version}: committed file {uri} cannot be read "
                f"({str(exc).splitlines()[0]}); run `fruits-assets repair {features.asset}`"
            ) from None
        frame = table.to_pandas()
        frames.append(frame)
        rows_by_file.append((uri, frame["path"].tolist()))
    manifest = (
        pd.concat(frames, ignore_index=True) if frames else pd.DataFrame({"path": [], "fingerprint": []}, dtype=object)
    )
    if rejects is None or "fingerprint" not in rejects.columns:
        rejects = pd.DataFrame({c: pd.Series(dtype="object") for c in REJECT_COLUMNS})
    previous = Previous(features.uri, features.info["featurizer_key"], manifest, rejects[list(REJECT_COLUMNS)])
    return PreviousFeatures(previous, rows_by_file)
