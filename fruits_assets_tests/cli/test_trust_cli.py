"""What readers can rely on, through the real `dagster` CLI: concurrent runs on a fresh instance
never mix inputs, and a run killed with SIGKILL changes nothing that readers see; its residue is
removed and its record marked failed by the next run."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fruits_assets import names
from fruits_assets.images import sample_data
from fruits_assets.storage import catalog
from fruits_assets.storage.tables import Lake
from fruits_assets_tests.conftest import RUN_DIR, run_env

DAGSTER = str(Path(sys.executable).with_name("dagster"))
CLI = str(Path(sys.executable).with_name("fruits-assets"))
ASSETS = list(names.DATA_ASSETS)  # the report's notebook is tested with the graph (test_graph.py)
N_SMALL = 30


def materialize_cmd(select="not key:report"):
    return [DAGSTER, "asset", "materialize", "-m", "fruits_assets.definitions", "--select", select]


def pointers(data: Path) -> dict:
    """Each table's newest version and the run that committed it."""
    lake = Lake(str(data))
    return {a: (lake.latest_version(a), lake.snapshot(a).run_id) for a in ASSETS}


def latest_row_counts(instance, run_id):
    from dagster import DagsterEventType, EventRecordsFilter

    records = instance.get_event_records(EventRecordsFilter(DagsterEventType.ASSET_MATERIALIZATION))
    counts = {}
    for r in records:
        if r.run_id == run_id:
            m = r.event_log_entry.dagster_event.event_specific_data.materialization
            if "dagster/row_count" in m.metadata:  # tables only
                counts[m.asset_key.path[-1]] = m.metadata["dagster/row_count"].value
    return counts


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory, sample_images, seeded_weights):
    """Two whole-graph runs started together on a FRESH instance and data root, on different image
    sets (100 and 30 images)."""
    tmp = tmp_path_factory.mktemp("trust")
    small = tmp / "small images"
    sample_data.generate(small, N_SMALL)
    env_big = run_env(tmp, sample_images, seeded_weights)
    # what `make` does to a new DAGSTER_HOME: write our dagster.yaml, nothing else (no database yet)
    subprocess.run([CLI, "home", "init"], env=env_big, check=True, capture_output=True)
    assert sorted(p.name for p in Path(env_big["DAGSTER_HOME"]).iterdir()) == ["dagster.yaml"]
    env_small = dict(env_big, FRUITS_IMAGES_DIR=str(small))
    procs = [
        subprocess.Popen(
            materialize_cmd(), cwd=RUN_DIR, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        for env in (env_big, env_small)
    ]
    logs = [p.communicate(timeout=600)[0] for p in procs]
    return tmp, env_big, procs, logs


def test_concurrent_runs_on_a_fresh_instance_never_overwrite_each_other(two_runs):
    """Two runs on different image sets, started together: every commit is made against the
    version its step read, so the later of two conflicting commits fails in one line and changes
    nothing; a run that succeeds is consistent with itself, and the tables' lineage gives a
    consistent set. (Which run conflicts depends on timing; the conflict itself is proven
    deterministically in storage/test_storage.py.)"""
    from dagster import DagsterInstance, DagsterRunStatus

    tmp, env, procs, logs = two_runs
    conflicts = 0
    for proc, log in zip(procs, logs):
        if proc.returncode != 0:
            assert "after this run read" in log and "nothing of this run was committed" in log, log[-4000:]
            conflicts += 1
    assert conflicts <= 1
    os.environ["DAGSTER_HOME"] = env["DAGSTER_HOME"]
    try:
        with DagsterInstance.get() as instance:
            runs = instance.get_runs()
            assert len(runs) == 2
            succeeded = [r for r in runs if r.status == DagsterRunStatus.SUCCESS]
            assert len(succeeded) == 2 - conflicts
            for run in succeeded:
                counts = latest_row_counts(instance, run.run_id)
                # each run's PCA projects its own features of its own inventory
                assert counts["image_features"] == counts["image_pca"] == counts["raw_images"], counts
                assert counts["raw_images"] in {100, N_SMALL}
    finally:
        del os.environ["DAGSTER_HOME"]
    root = str(tmp / "data")
    together = catalog.consistent(root)
    pca = catalog.load("image_pca", version=together["image_pca"], root=root)
    features = catalog.load("image_features", version=together["image_features"], root=root)
    assert sorted(pca["path"]) == sorted(features["path"])


def test_killed_run_changes_nothing_and_upkeep_removes_its_files(two_runs):
    """kill -9 while Spark tasks write image_features' parts: the table stays at its committed
    version, the parts are never read, and upkeep removes them once older than the minimum age."""
    tmp, env, _, _ = two_runs
    data = tmp / "data"
    before = pointers(data)
    committed = {p.name for p in (data / "image_features").glob("*.parquet")}
    # full_refresh: the images are unchanged, an incremental run would have nothing to featurize
    refresh = ["--config-json", '{"ops": {"image_features": {"config": {"full_refresh": true}}}}']
    proc = subprocess.Popen(
        materialize_cmd() + refresh,
        cwd=RUN_DIR,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    seen = []
    for line in proc.stdout:  # kill -9 while Spark tasks are writing image_features' parts
        seen.append(line)
        if "image_features - " in line and "to featurize" in line:  # the step's plan, logged at INFO
            break
    table = data / "image_features"
    deadline = time.time() + 120
    new_parts = lambda: {p.name for p in table.glob("*.parquet")} - committed  # noqa: E731
    while time.time() < deadline and not new_parts():
        time.sleep(0.2)
    assert new_parts(), "".join(seen[-30:])
    os.killpg(proc.pid, signal.SIGKILL)  # the CLI, its Spark JVM and Python workers
    proc.wait(timeout=60)
    after = pointers(data)
    assert after["image_features"] == before["image_features"]  # readers see what they saw before
    assert catalog.load("image_features", root=str(data))["path"].is_unique
    left = new_parts()
    assert left
    young = subprocess.run([CLI, "gc"], cwd=RUN_DIR, env=env, capture_output=True, text=True, timeout=300)
    assert young.returncode == 0, young.stderr
    assert new_parts() == left  # younger than FRUITS_GC_MIN_AGE_HOURS: maybe a live run's
    again = subprocess.run(
        materialize_cmd("raw_images"),
        cwd=RUN_DIR,
        env=dict(env, FRUITS_GC_MIN_AGE_HOURS="0"),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert again.returncode == 0, again.stderr[-4000:]
    assert "upkeep: " in again.stdout + again.stderr
    assert not new_parts()
    gc = subprocess.run(
        [CLI, "gc", "--min-age-hours", "0"], cwd=RUN_DIR, env=env, capture_output=True, text=True, timeout=300
    )
    lines = gc.stdout.splitlines()
    assert gc.returncode == 0 and lines[0] == f"tables under {data}", gc.stdout + gc.stderr
    assert lines[1].startswith("0 files removed"), gc.stdout + gc.stderr
