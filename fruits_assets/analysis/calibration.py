"""Which images calibrate the int8 feature model, and what identifies them (pure logic).

The sample is a seeded hash ranking of the images' paths relative to the store's root, not a
random draw over row order: the same collection gives the same sample wherever it lives (another
folder, S3), and the sample's digest names the calibration in the build key and the featurizer
key. Once a model is calibrated it is kept while its sample still stands (every sampled image
still there, unchanged): re-drawing the sample whenever an image is added would change the model,
and with it every feature row, on almost every incremental run.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping

CALIBRATION_SEED = 0


def _rank(seed: int, relative_path: str) -> str:
    return hashlib.sha256(f"{seed}\0{relative_path}".encode()).hexdigest()


def ranking(relative_paths: Iterable[str], seed: int = CALIBRATION_SEED) -> list[str]:
    """Paths (relative to the store's root) in seeded hash order: its first ``n`` are a uniform
    sample, independent of listing order and of where the store is."""
    return sorted(set(relative_paths), key=lambda p: _rank(seed, p))


def digest(entries: Iterable[tuple[str, str]]) -> str:
    """What the calibration saw: (relative path, sha256 of the file's bytes) pairs, order-free."""
    h = hashlib.sha256(b"calibration-v1")
    for path, content in sorted(entries):
        h.update(f"\n{path}\0{content}".encode())
    return h.hexdigest()


def record(
    entries: Iterable[tuple[str, str, str]], requested: int, inventory: int, seed: int = CALIBRATION_SEED
) -> dict:
    """The calibration as provenance records it: ``requested`` (the size setting), how many images the
    inventory had, and the images used, (relative path, inventory fingerprint, sha256 of the bytes) each."""
    rows = sorted(entries)
    return {
        "requested": requested,
        "inventory": inventory,
        "images": len(rows),
        "seed": seed,
        "digest": digest((p, h) for p, _, h in rows),
        "sample": [{"path": p, "fingerprint": f, "sha256": h} for p, f, h in rows],
    }


def smallest_ranks(relative_paths: Iterable[str], n: int, seed: int = CALIBRATION_SEED) -> list[str]:
    """The first ``n`` of :func:`ranking`, streamed: memory for ``n`` paths, whatever the inventory."""
    import heapq

    return [p for _, p in heapq.nsmallest(n, ((_rank(seed, p), p) for p in set(relative_paths)))]


def still_stands(
    recorded: Mapping | None, fingerprints: Mapping[str, str], requested: int, inventory: int | None = None
) -> bool:
    """A stored calibration can be kept: drawn with the same size setting and seed, and every image
    it used still in the inventory with the fingerprint it had (``fingerprints``: relative path ->
    fingerprint; it may hold only the sample's paths). Images added since do not count (see the
    module's docstring), unless the sample was short of ``requested`` for lack of images
    (``inventory``: the number of images now, ``len(fingerprints)`` by default)."""
    inventory = len(fingerprints) if inventory is None else inventory
    if not recorded or not recorded.get("sample"):
        return False
    if recorded.get("requested") != requested or recorded.get("seed") != CALIBRATION_SEED:
        return False
    if recorded.get("images", 0) < requested and inventory > recorded.get("inventory", 0):
        return False  # a short calibration (a small collection) is drawn again once the collection grew
    return all(fingerprints.get(e["path"]) == e["fingerprint"] for e in recorded["sample"])


def summary(recorded: Mapping | None) -> str:
    """One short line for logs: how many images and the digest's head."""
    if not recorded:
        return "none"
    return f"{recorded.get('images')} images, digest {str(recorded.get('digest'))[:12]}"
