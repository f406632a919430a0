"""The int8 calibration images, read from the image store (local or S3) and decoded exactly as the
Spark tasks decode them, so the activation ranges are those of what the workers feed the model.
Which images: a ranking the caller gives (analysis/calibration.py, a seeded sample)."""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd

from ..storage.fs import Location
from .decode import RejectedImage, load_rgb
from .layout import relative_image_path
from .reader import ImageReader


def relative_fingerprints(inventory: pd.DataFrame, root: str) -> dict[str, str]:
    """relative path -> fingerprint of every inventory image (``root``: how the inventory spells the store)."""
    return {relative_image_path(p, root): str(f) for p, f in zip(inventory["path"], inventory["fingerprint"])}


def read_ranked(
    inventory: pd.DataFrame, root: str, ranked: list[str], requested: int, location: Location, threads: int = 16
) -> tuple[np.ndarray, list[tuple[str, str, str]]]:
    """The first ``requested`` images of ``ranked`` (paths relative to ``root``) that decode: uint8
    pixels (n, 224, 224, 3) and (relative path, fingerprint, sha256 of the bytes) per image. A
    rejected image is passed over, the next in the ranking takes its place; fewer when the
    inventory has fewer."""
    by_relative = {relative_image_path(p, root): p for p in inventory["path"]}
    fingerprints = relative_fingerprints(inventory, root)
    pixels: list[np.ndarray] = []
    entries: list[tuple[str, str, str]] = []
    reader = ImageReader(location, threads)
    try:
        start = 0
        while len(pixels) < requested and start < len(ranked):
            chunk = ranked[start : start + requested - len(pixels)]
            start += len(chunk)
            for rel, blob in zip(chunk, reader([by_relative[r] for r in chunk])):
                if isinstance(blob, Exception):
                    continue
                try:
                    pixels.append(load_rgb(blob))
                except RejectedImage:
                    continue
                entries.append((rel, fingerprints[rel], hashlib.sha256(blob).hexdigest()))
    finally:
        reader.close()
    return (np.stack(pixels) if pixels else np.zeros((0, 0, 0, 3), np.uint8)), entries
