import json

import pytest

from fruits_assets.storage.versions import POINTER, VersionedStore

pytestmark = pytest.mark.fast


def write_version(store: VersionedStore, asset: str, version: str, payload: bytes) -> str:
    uri = store.version_uri(asset, version)
    store.write_bytes(f"{uri}/data.bin", payload)
    return uri


def test_nothing_visible_until_published(tmp_path):
    store = VersionedStore(str(tmp_path))
    assert store.current("a") is None
    with pytest.raises(FileNotFoundError, match="materialize it first"):
        store.require_current("a")
    write_version(store, "a", "20260101T000000Z-run1", b"one")
    assert store.current("a") is None  # written, not published: a failed run stops here
    store.publish("a", "20260101T000000Z-run1", {"kind": "x"})
    published = store.require_current("a")
    assert published.version == "20260101T000000Z-run1" and published.info == {"kind": "x"}


def test_failed_run_leaves_last_good_output(tmp_path):
    store = VersionedStore(str(tmp_path))
    uri = write_version(store, "a", "20260101T000000Z-good", b"good")
    store.publish("a", "20260101T000000Z-good")
    write_version(store, "a", "20260102T000000Z-failed", b"half")  # never published
    assert store.current("a").uri == uri
    assert store.read_bytes(f"{store.current('a').uri}/data.bin") == b"good"
    assert json.loads((tmp_path / "a" / POINTER).read_text())["version"] == "20260101T000000Z-good"


def test_old_versions_are_pruned_newer_ones_kept(tmp_path):
    store = VersionedStore(str(tmp_path), keep_versions=2)
    write_version(store, "a", "20260109T000000Z-inflight", b"x")  # another run still writing
    for day in range(1, 5):
        write_version(store, "a", f"2026010{day}T000000Z-r", b"x")
        store.publish("a", f"2026010{day}T000000Z-r")
    left = sorted(p.name for p in (tmp_path / "a").iterdir() if p.name.startswith("v="))
    assert left == ["v=20260103T000000Z-r", "v=20260104T000000Z-r", "v=20260109T000000Z-inflight"]


def test_half_written_versions_never_take_a_retained_slot(tmp_path):
    """A killed run's version folder (never published) must not push a published one out."""
    store = VersionedStore(str(tmp_path), keep_versions=2)
    write_version(store, "a", "20260101T000000Z-good1", b"x")
    store.publish("a", "20260101T000000Z-good1")
    write_version(store, "a", "20260102T000000Z-killed", b"half")  # e.g. only Spark's _temporary
    write_version(store, "a", "20260103T000000Z-good2", b"x")
    store.publish("a", "20260103T000000Z-good2")
    left = sorted(p.name for p in (tmp_path / "a").iterdir() if p.name.startswith("v="))
    assert "v=20260101T000000Z-good1" in left  # the previous good version is still retained
    assert store.is_published_version("a", "20260101T000000Z-good1")
    assert not store.is_published_version("a", "20260102T000000Z-killed")


def test_versions_sort_by_time_and_are_unique(tmp_path):
    store = VersionedStore(str(tmp_path))
    a, b = store.new_version("run-aaaa"), store.new_version("run-aaaa")
    assert a != b and a[:16] <= b[:16]
