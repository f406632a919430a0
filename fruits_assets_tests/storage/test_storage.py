"""The Delta tables under the assets: commits, conflicts, time travel, upkeep and repair, with
real delta-rs on a local folder (the S3 path is exercised by the EMR end-to-end test)."""

import os
import time

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from fruits_assets.storage import catalog
from fruits_assets.storage.artifacts import FeatureModelArtifact
from fruits_assets.storage.codecs import blob_table, blobs_of, read_frame, read_model
from fruits_assets.storage.tables import CommitConflict, Lake, TableError
from fruits_assets.storage.upkeep import collect, damaged_files, repair

pytestmark = pytest.mark.fast
SCHEMA = pa.schema([("path", pa.string()), ("v", pa.int64())])


def write(lake: Lake, asset: str, run: str, rows: list[str]) -> str:
    prefix = lake.new_prefix(asset, run)
    table = pa.table({"path": rows, "v": list(range(len(rows)))}, schema=SCHEMA)
    fs, path = lake.fs(f"{prefix}-00000.parquet")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    pq.write_table(table, path, write_page_checksum=True)
    return prefix


def commit(lake, asset, run, rows, read_version, removes=(), info=None):
    prefix = write(lake, asset, run, rows)
    return lake.commit(asset, SCHEMA, lake.written(prefix), list(removes), read_version, info or {"run_id": run})


def test_nothing_visible_until_committed(tmp_path):
    lake = Lake(str(tmp_path))
    assert lake.snapshot("a") is None
    write(lake, "a", "run1", ["x"])  # written by tasks, never committed: a failed step stops here
    assert lake.snapshot("a") is None
    assert commit(lake, "a", "run2", ["y"], None) == 0
    snap = lake.snapshot("a")
    assert snap.version == 0 and snap.rows == 1 and read_frame(lake, snap)["path"].tolist() == ["y"]


def test_concurrent_commits_conflict_and_the_later_changes_nothing(tmp_path):
    lake = Lake(str(tmp_path))
    commit(lake, "a", "r0", ["x"], None)
    read = lake.snapshot("a")
    commit(lake, "a", "r1", ["y"], read.version, read.files)  # the first run commits version 1
    with pytest.raises(CommitConflict, match="another run committed version 1 after this run read version 0"):
        commit(lake, "a", "r2", ["z"], read.version, read.files)
    assert read_frame(lake, lake.snapshot("a"))["path"].tolist() == ["y"]
    commit(lake, "b", "r3", ["x"], None)
    with pytest.raises(CommitConflict):  # two first commits: the second one finds the table
        commit(lake, "b", "r4", ["x"], None)


def test_time_travel_and_lineage_in_the_commits(tmp_path):
    lake = Lake(str(tmp_path))
    commit(lake, "a", "r0", ["x"], None, info={"run_id": "r0", "inputs": {"b": 4}})
    first = lake.snapshot("a")
    time.sleep(0.05)
    moment = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(time.time())) + "Z"
    time.sleep(1.1)
    commit(lake, "a", "r1", ["y"], 0, first.files, {"run_id": "r1", "inputs": {"b": 5}})
    assert read_frame(lake, lake.snapshot("a", version=0))["path"].tolist() == ["x"]
    assert read_frame(lake, lake.snapshot("a", as_of=moment))["path"].tolist() == ["x"]
    assert lake.snapshot("a").inputs == {"b": 5} and lake.snapshot("a", 0).inputs == {"b": 4}
    assert lake.version_of_run("a", "r0") == 0 and lake.version_of_run("a", "r9") is None
    history = catalog.history("raw_images", root=str(tmp_path))
    assert history == []


def test_upkeep_removes_uncommitted_and_old_files_only_once_old_enough(tmp_path):
    lake = Lake(str(tmp_path))
    commit(lake, "a", "r0", ["x"], None)
    for n in range(1, 4):
        snap = lake.snapshot("a")
        commit(lake, "a", f"r{n}", [f"x{n}"], snap.version, snap.files)
    write(lake, "a", "killed", ["half"])  # a killed run's part
    files = lambda: sorted(p.name for p in (tmp_path / "a").glob("*.parquet"))  # noqa: E731
    before = files()
    assert collect(lake, ("a",), keep_versions=2, min_age_hours=1).removed == []  # all too young
    assert files() == before
    removed = collect(lake, ("a",), keep_versions=2, min_age_hours=0).removed
    assert len(removed) == 3  # versions 0 and 1's files, and the killed run's part
    assert len(files()) == 2
    assert read_frame(lake, lake.snapshot("a", version=2))["path"].tolist() == ["x2"]  # kept: time travel works


def test_deleted_truncated_and_flipped_files_are_named_and_repaired(tmp_path):
    lake = Lake(str(tmp_path))
    commit(lake, "a", "r0", ["x"], None, info={"run_id": "r0", "featurizer_key": "k", "content_key": "c"})
    snap = lake.snapshot("a")
    commit(lake, "a", "r1", ["y", "z"], snap.version, (), {"run_id": "r1", "featurizer_key": "k", "content_key": "d"})
    snap = lake.snapshot("a")
    first, second = (tmp_path / "a" / f.path for f in snap.files)
    data = second.read_bytes()
    second.write_bytes(data[: len(data) // 2])  # truncated in place
    with pytest.raises(TableError, match=rf"committed file .*{second.name} has \d+ bytes where the log recorded"):
        lake.snapshot("a")
    second.write_bytes(data)
    first.unlink()
    with pytest.raises(TableError, match=rf"{first.name} is missing; run `fruits-assets repair a`"):
        lake.snapshot("a")
    assert [f.path for f in damaged_files(lake, "a")[1]] == [first.name]
    assert repair(lake, "a") == [str(first)]
    repaired = lake.snapshot("a")
    assert read_frame(lake, repaired)["path"].tolist() == ["y", "z"]
    # Reuse keys are dropped (the rows changed); what stays true of the rest is kept.
    assert repaired.info["featurizer_key"] == "k" and "content_key" not in repaired.info
    flipped = bytearray(second.read_bytes())
    flipped[10] ^= 0xFF  # a bit flip in a data page, same size
    second.write_bytes(bytes(flipped))
    with pytest.raises(TableError, match="cannot be read"):
        read_frame(lake, lake.snapshot("a"))
    assert repair(lake, "a") == [str(second)]


def test_a_damaged_model_is_never_reused(tmp_path):
    lake = Lake(str(tmp_path))
    model = FeatureModelArtifact(b"flatbuffer" * 1000, {"model_sha256": "abc"})
    name = lake.write_file("feature_model", "part-r0-000000-00000.parquet", blob_table(blobs_of(model)))
    table = pq.read_table(tmp_path / "feature_model" / name)
    lake.commit("feature_model", table.schema, [name], [], None, {})
    assert read_model(lake, lake.snapshot("feature_model")).model_bytes == model.model_bytes
    # Rewritten in place with other bytes under the same recorded size and sha: caught on read.
    other = blob_table({"model.tflite": b"flatbuffex" * 1000, "provenance.json": b'{"model_sha256": "abc"}'})
    other = other.set_column(1, "sha256", table.column("sha256"))
    pq.write_table(other, tmp_path / "feature_model" / name, write_page_checksum=True)
    path = tmp_path / "feature_model" / name
    entry = lake.snapshot("feature_model", verify=False).files[0]
    if path.stat().st_size == entry.size:
        with pytest.raises(TableError, match="model.tflite does not match its recorded sha256"):
            read_model(lake, lake.snapshot("feature_model"))
    else:
        with pytest.raises(TableError, match="has .* bytes where the log recorded"):
            lake.snapshot("feature_model")


def test_a_damaged_log_is_one_line_naming_it(tmp_path):
    lake = Lake(str(tmp_path))
    commit(lake, "a", "r0", ["x"], None)
    log = tmp_path / "a" / "_delta_log" / f"{0:020d}.json"
    log.write_text("")
    with pytest.raises(TableError) as raised:
        lake.snapshot("a")
    assert "\n" not in str(raised.value) and str(raised.value).startswith("a: table")


def test_outputs_of_the_version_folder_layout_are_recognised_and_collected(tmp_path):
    """The first run after upgrading recomputes once (the IO manager and image_features say so
    from `legacy`); upkeep removes the old pointers and run folders once old enough."""
    lake = Lake(str(tmp_path))
    (tmp_path / "image_features" / "v=20261201T000000Z-abcd1234-0000").mkdir(parents=True)
    (tmp_path / "image_features" / "_CURRENT.json").write_text("{}")
    (tmp_path / "_runs" / "old-run").mkdir(parents=True)
    assert lake.legacy("image_features") and not lake.exists("image_features")
    commit(lake, "image_features", "r0", ["x"], None)
    assert not lake.legacy("image_features")
    removed = collect(lake, ("image_features",), keep_versions=3, min_age_hours=0).removed
    assert "image_features/_CURRENT.json" in removed and "_runs/" in removed
    assert read_frame(lake, lake.snapshot("image_features"))["path"].tolist() == ["x"]


def test_a_step_on_the_cluster_only_asks_and_the_dagster_process_commits(tmp_path):
    """The EMR path: the cluster writes its files and a commit request; nothing changes for
    readers until the Dagster process commits it (a cancelled step's request never is, and
    upkeep removes it with its files)."""
    from fruits_assets.storage.pending import commit_pending, request_commit

    lake = Lake(str(tmp_path))
    commit(lake, "a", "r0", ["x"], None)
    read = lake.snapshot("a")
    prefix = write(lake, "a", "r1", ["y"])
    request_commit(lake, "r1", "step_a", "a", SCHEMA, lake.written(prefix), list(read.files), 0, {"run_id": "r1"})
    assert lake.latest_version("a") == 0  # asked, not committed: readers see version 0
    assert commit_pending(lake, ("a", "b"), "r1", "step_a") == {"a": (1, True)}
    assert read_frame(lake, lake.snapshot("a"))["path"].tolist() == ["y"]
    assert commit_pending(lake, ("a",), "r1", "step_a") == {}  # done once
    prefix = write(lake, "a", "r2", ["z"])  # a cancelled step: its request is never committed
    request_commit(lake, "r2", "step_a", "a", SCHEMA, lake.written(prefix), [], 1, {"run_id": "r2"})
    removed = collect(lake, ("a",), keep_versions=3, min_age_hours=0).removed
    assert "a/_pending/r2-step_a-0.json" in removed and any(p.startswith("a/part-r2") for p in removed)
    assert read_frame(lake, lake.snapshot("a"))["path"].tolist() == ["y"]
