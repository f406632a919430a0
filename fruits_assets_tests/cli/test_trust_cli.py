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
from fruits_assets.storage.ledger import run_ids
from fruits_assets.storage.versions import VersionedStore
from fruits_assets_tests.conftest import RUN_DIR, run_env

DAGSTER = str(Path(sys.executable).with_name("dagster"))
CLI = str(Path(sys.executable).with_name("fruits-assets"))
ASSETS = list(names.DATA_ASSETS)  # the report's notebook is tested with the graph (test_graph.py)
N_SMALL = 30


def materialize_cmd(select="not key:report"):
    return [DAGSTER, "asset", "materialize", "-m", "fruits_assets.definitions", "--select", select]


def pointers(data: Path) -> dict:
    store = VersionedStore(str(data))
    return {a: (store.require_current(a).version, store.require_current(a).info["run_id"]) for a in ASSETS}


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


def test_concurrent_runs_on_a_fresh_instance_never_mix(two_runs):
    from dagster import DagsterInstance, DagsterRunStatus

    tmp, env, procs, logs = two_runs
    for proc, log in zip(procs, logs):
        assert proc.returncode == 0, log[-4000:]
    os.environ["DAGSTER_HOME"] = env["DAGSTER_HOME"]
    try:
        with DagsterInstance.get() as instance:
            runs = instance.get_runs()
            assert len(runs) == 2 and {r.status for r in runs} == {DagsterRunStatus.SUCCESS}
            seen = set()
            for run in runs:
                counts = latest_row_counts(instance, run.run_id)
                # each run's PCA projects its own features of its own inventory
                assert counts["image_features"] == counts["image_pca"] == counts["raw_images"], counts
                seen.add(counts["raw_images"])
            assert seen == {100, N_SMALL}
    finally:
        del os.environ["DAGSTER_HOME"]
    # readers see one run's outputs, never a mix of the two
    published = pointers(tmp / "data")
    assert len({run_id for _, run_id in published.values()}) == 1, published


def test_killed_run_changes_nothing_and_next_run_cleans_up(two_runs):
    from dagster import DagsterInstance, DagsterRunStatus

    tmp, env, _, _ = two_runs
    data = tmp / "data"
    before = pointers(data)
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
    staging = data / "_staging"
    deadline = time.time() + 120
    while time.time() < deadline and not any(staging.glob("image_features-*/part-0*.parquet")):
        time.sleep(0.2)
    assert any(staging.glob("image_features-*/part-0*.parquet")), "".join(seen[-30:])
    os.killpg(proc.pid, signal.SIGKILL)  # the CLI, its Spark JVM and Python workers
    proc.wait(timeout=60)
    assert pointers(data) == before  # readers see exactly what they saw before
    [dead] = [r for r in run_ids(VersionedStore(str(data))) if r not in {rid for _, rid in before.values()}]
    unpublished = [
        v
        for a in ("raw_images", "feature_model")
        for v in (data / a).glob("v=*")
        if not (v / "_PUBLISHED.json").exists()
    ]
    assert unpublished, "the killed run had written versions it never published"

    again = subprocess.run(
        materialize_cmd("raw_images"), cwd=RUN_DIR, env=env, capture_output=True, text=True, timeout=600
    )
    assert again.returncode == 0, again.stderr[-4000:]
    assert "residue of dead runs: 1 dead runs cleaned" in again.stdout + again.stderr
    assert not any(staging.iterdir())
    assert not [v for v in unpublished if v.exists()]
    assert dead not in run_ids(VersionedStore(str(data)))
    os.environ["DAGSTER_HOME"] = env["DAGSTER_HOME"]
    try:
        with DagsterInstance.get() as instance:
            assert instance.get_run_by_id(dead).status == DagsterRunStatus.FAILURE
    finally:
        del os.environ["DAGSTER_HOME"]
    gc = subprocess.run([CLI, "gc"], cwd=RUN_DIR, env=env, capture_output=True, text=True, timeout=300)
    # nothing of the dead run is left; the ledger of the finished raw_images run is all it removes
    assert gc.returncode == 0, gc.stderr
    assert gc.stdout.startswith("1 dead runs cleaned: 0 unpublished versions, 0 staging folders removed"), gc.stdout
