"""The int8 calibration images: a seeded sample of the inventory, read from the image store (local
or S3) and decoded exactly as the Spark tasks decode them, so the activation ranges are those of
what the workers will feed the model."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..analysis import calibration
from ..images.decode import RejectedImage, load_rgb
from ..images.layout import relative_image_path
from ..images.reader import ImageReader
from ..storage.fs import Location


@dataclass
class CalibrationSample:
    pixels: np.ndarray  # uint8 (n, 224, 224, 3)
    record: dict  # analysis.calibration.record(): what provenance and the keys say about it


def relative_fingerprints(inventory: pd.DataFrame, root: str) -> dict[str, str]:
    """relative path -> fingerprint of every inventory image."""
    return {relative_image_path(p, root): str(f) for p, f in zip(inventory["path"], inventory["fingerprint"])}


def read_sample(
    inventory: pd.DataFrame, root: str, location: Location, requested: int, threads: int = 16
) -> CalibrationSample:
    """The first ``requested`` images of the seeded ranking that decode (a rejected image is passed
    over: the next in the ranking takes its place); fewer when the inventory has fewer."""
    by_relative = {relative_image_path(p, root): p for p in inventory["path"]}
    fingerprints = relative_fingerprints(inventory, root)
    ranked = calibration.ranking(by_relative)
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
    stacked = np.stack(pixels) if pixels else np.zeros((0, 0, 0, 3), np.uint8)
    return CalibrationSample(stacked, calibration.record(entries, requested))
