"""Which images calibrate int8, when a calibration still stands, and the keys that keep precisions
apart (pure logic)."""

import hashlib

import pytest

from fruits_assets.analysis import calibration
from fruits_assets.analysis.keys import featurizer_key

pytestmark = pytest.mark.fast

PATHS = [f"{split}/{label}/{i}_100.jpg" for split in ("Training", "Test") for label in "ABCDE" for i in range(20)]


def test_the_sample_is_a_seeded_ranking_of_relative_paths():
    ranked = calibration.ranking(PATHS)
    assert calibration.ranking(reversed(PATHS)) == ranked  # listing order does not matter
    assert calibration.ranking(PATHS, seed=1) != ranked
    # An added image takes a place in the sample only if it ranks there: the others keep their order.
    grown = calibration.ranking([*PATHS, "Training/F/new_100.jpg"])
    assert [p for p in grown if p != "Training/F/new_100.jpg"] == ranked
    labels = {p.split("/")[1] for p in ranked[:40]}
    assert labels == set("ABCDE")  # spread over the classes, not the first folder listed


def record(paths, requested=8, inventory=len(PATHS)):
    entries = [(p, f"fp-{p}", hashlib.sha256(p.encode()).hexdigest()) for p in paths]
    return calibration.record(entries, requested, inventory)


def test_a_calibration_stands_while_its_images_are_unchanged():
    sample = calibration.ranking(PATHS)[:8]
    kept = record(sample)
    fingerprints = {p: f"fp-{p}" for p in PATHS}
    assert calibration.still_stands(kept, fingerprints, 8)
    assert calibration.still_stands(kept, {**fingerprints, "Training/F/new_100.jpg": "x"}, 8)  # images added
    assert not calibration.still_stands(kept, {**fingerprints, sample[3]: "changed"}, 8)
    assert not calibration.still_stands(kept, {p: f for p, f in fingerprints.items() if p != sample[0]}, 8)
    assert not calibration.still_stands(kept, fingerprints, 16)  # the size setting changed
    assert not calibration.still_stands(None, fingerprints, 8)
    # A collection smaller than the setting: its short sample stands until the collection grows.
    few = dict(list(fingerprints.items())[:5])
    short = record(list(few), requested=8, inventory=5)
    assert calibration.still_stands(short, few, 8)
    assert not calibration.still_stands(short, {**few, "Training/F/new_100.jpg": "x"}, 8)


def test_the_digest_names_what_the_calibration_saw():
    sample = calibration.ranking(PATHS)[:8]
    kept = record(sample)
    assert kept["digest"] == record(list(reversed(sample)))["digest"]  # order-free
    assert kept["digest"] != record(calibration.ranking(PATHS)[1:9])["digest"]
    other = [(e["path"], e["sha256"]) for e in kept["sample"]]
    other[0] = (other[0][0], "0" * 64)  # the same path, other bytes
    assert calibration.digest(other) != kept["digest"]


def test_featurizer_key_keeps_fp32_and_names_int8_with_its_calibration():
    import PIL

    legacy = hashlib.sha256(f"abc|incremental-v1|Pillow {PIL.__version__}".encode()).hexdigest()
    assert featurizer_key("abc", "incremental-v1") == legacy == featurizer_key("abc", "incremental-v1", "fp32")
    int8 = featurizer_key("abc", "incremental-v1", "int8", "d1")
    assert int8 != legacy and int8 != featurizer_key("abc", "incremental-v1", "int8", "d2")
