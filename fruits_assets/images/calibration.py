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


def scan_inventory(batches, root: str, wanted: set[str], candidates: int, rank) -> tuple[int, dict, list]:
    """One streamed pass over the inventory's (path, fingerprint, skipped) batches: the number of
    images, {relative path: (path, fingerprint)} of the ``wanted`` paths (a stored sample) and of
    the ``candidates`` first by ``rank`` (a function of relative paths, e.g. the seeded ranking):
    memory for a few hundred rows, whatever the inventory."""
    import heapq

    count, found = 0, {}
    heap: list[tuple[str, tuple]] = []
    for batch in batches:
        for path, fingerprint, skipped in zip(
            *(batch.column(c).to_pylist() for c in ("path", "fingerprint", "skipped"))
        ):
            if skipped is not None:
                continue
            count += 1
            rel = relative_image_path(path, root)
            if rel in wanted:
                found[rel] = (path, str(fingerprint))
            item = (rank(rel), rel, path, str(fingerprint))
            if len(heap) < candidates:
                heapq.heappush(heap, (_neg(item[0]), item))
            elif item[0] < heap[0][1][0]:
                heapq.heapreplace(heap, (_neg(item[0]), item))
    ranked = sorted(item for _, item in heap)
    for _, rel, path, fingerprint in ranked:
        found.setdefault(rel, (path, fingerprint))
    return count, found, [rel for _, rel, _, _ in ranked]


def _neg(rank: str) -> str:
    """A key that orders hex ranks backwards (a max-heap from heapq's min-heap)."""
    return rank.translate(str.maketrans("0123456789abcdef", "fedcba9876543210"))


def relative_fingerprints(inventory: pd.DataFrame, root: str) -> dict[str, str]:
    """relative path -> fingerprint of every inventory image (``root``: how the inventory spells the store)."""
    return {relative_image_path(p, root): str(f) for p, f in zip(inventory["path"], inventory["fingerprint"])}


def read_ranked(
    found: dict, ranked: list[str], requested: int, location: Location, threads: int = 16
) -> tuple[np.ndarray, list[tuple[str, str, str]]]:
    """The first ``requested`` images of ``ranked`` (relative paths; ``found``: relative path ->
    (path, fingerprint)) that decode: uint8 pixels (n, 224, 224, 3) and (relative path,
    fingerprint, sha256 of the bytes) per image. A rejected image is passed over, the next in the
    ranking takes its place; fewer when the inventory has fewer."""
    by_relative = {rel: p for rel, (p, _) in found.items()}
    fingerprints = {rel: f for rel, (_, f) in found.items()}
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
