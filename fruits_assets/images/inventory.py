"""What is under an image store root: the images, and every other file with why it was left out.

Pure listing logic (no Dagster, no Spark). Each file under the root lands in exactly one of
:attr:`Scan.images` and :attr:`Scan.skipped`, so counts reconcile with what a user sees on disk.
:func:`scan` holds every row in memory: tests and small stores; raw_images lists in Spark tasks
(fruits_assets/spark/listing.py) with the same shards (images/listing.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import pandas as pd

from .digest import RowDigest
from .listing import list_in_threads, plan_shards
from .local_walk import DANGLING, NOT_UTF8, missing_root_message

__all__ = ["DANGLING", "NOT_UTF8", "Scan", "listing_digest", "missing_root_message", "scan", "skipped_counts"]

IMAGE_COLUMNS = ["path", "label", "split", "bytes", "fingerprint"]
SKIPPED_COLUMNS = ["path", "reason"]


@dataclass(frozen=True)
class Scan:
    """``images``: path, label, split, bytes (label and split None when the file is not at
    ``<split>/<label>/<file>``: featurization rejects it with that reason), sorted by path.
    ``skipped``: path, reason (string dtype), sorted by path. Paths are ``file:/abs/...`` or
    ``s3://bucket/key``; undecodable bytes in local names are shown as ``\\xNN``."""

    images: pd.DataFrame
    skipped: pd.DataFrame

    def skipped_counts(self) -> dict[str, int]:
        """{reason: number of files}, most frequent first (ties by reason)."""
        return skipped_counts(self.skipped)


def skipped_counts(skipped: pd.DataFrame) -> dict[str, int]:
    """{reason: number of files} of a ``skipped`` frame, most frequent first (ties by reason)."""
    counts = skipped["reason"].value_counts()
    return {str(reason): int(n) for reason, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))}


def listing_digest(images: pd.DataFrame) -> str:
    """The order-free digest of every (path, fingerprint) (:class:`RowDigest`): what the sensor's
    cursor and raw_images' data version compare."""
    digest = RowDigest()
    for path, fingerprint in zip(images["path"], images["fingerprint"]):
        digest.add(path, fingerprint)
    return digest.hexdigest()


def scan(
    root_uri: str,
    endpoint_url: Optional[str] = None,
    region: Optional[str] = None,
    manifest_uri: Optional[str] = None,
    max_age_hours: float = 48.0,
) -> Scan:
    """Every file under ``root_uri`` (a local folder, ``file:/...`` or ``s3://bucket/prefix``),
    classified. Raises FileNotFoundError when the root does not exist; an existing root without
    files gives two empty frames (whether that is an error is the caller's call)."""
    shards = plan_shards(root_uri, endpoint_url, region, manifest_uri, max_age_hours)
    _, rows = list_in_threads(root_uri, shards, endpoint_url, region, keep_rows=True)
    images = [r[:5] for r in rows if r[5] is None]
    skipped = [(r[0], r[5]) for r in rows if r[5] is not None]
    return Scan(images=_images_frame(images), skipped=_skipped_frame(skipped))


def _images_frame(rows: list) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=IMAGE_COLUMNS)
    frame = frame.astype({"path": object, "label": object, "split": object, "bytes": "int64", "fingerprint": object})
    return frame.sort_values("path", ignore_index=True)


def _skipped_frame(rows: list) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=SKIPPED_COLUMNS).astype("string")
    return frame.sort_values("path", ignore_index=True)
