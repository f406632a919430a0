"""A real dagster-webserver on 127.0.0.1: its GraphQL API lists the assets and runs a materialization."""

import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from dagster_graphql import DagsterGraphQLClient

from fruits_assets_tests.conftest import REPO, RUN_DIR, free_port, run_env

ASSET_NODES = "{ assetNodes { assetKey { path } groupName hasAssetChecks } }"


@pytest.fixture
def webserver(tmp_path, sample_images, seeded_weights):
    port = free_port()
    env = run_env(tmp_path, sample_images, seeded_weights)
    # A webserver alone has no daemon to dequeue runs: launch them directly, as the UI does under `dagster dev`.
    (tmp_path / "dagster_home" / "dagster.yaml").write_text(
        "run_coordinator:\n  module: dagster.core.run_coordinator\n  class: DefaultRunCoordinator\n")
    log = open(tmp_path / "webserver.log", "w")
    proc = subprocess.Popen(
        [str(Path(sys.executable).with_name("dagster-webserver")), "-w", str(REPO / "workspace.yaml"),
         "-h", "127.0.0.1", "-p", str(port)], cwd=RUN_DIR, env=env, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.time() + 180
    while time.time() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/server_info", timeout=2)
            break
        except OSError:
            assert proc.poll() is None, (tmp_path / "webserver.log").read_text()[-3000:]
            time.sleep(1)
    else:
        proc.kill()
        pytest.fail("webserver did not start: " + (tmp_path / "webserver.log").read_text()[-3000:])
    client = DagsterGraphQLClient("127.0.0.1", port_number=port, timeout=60)
    client.log_path = tmp_path / "webserver.log"
    yield client
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


def test_graphql_lists_assets_and_launches_a_materialization(webserver):
    nodes = webserver._execute(ASSET_NODES)["assetNodes"]
    by_name = {n["assetKey"]["path"][-1]: n for n in nodes}
    assert set(by_name) >= {"raw_images", "feature_model", "image_features", "image_rejects", "pca_model",
                            "image_pca"}
    assert {n["groupName"] for n in by_name.values()} == {"fruits"}
    assert by_name["image_features"]["hasAssetChecks"]

    run_id = webserver.submit_job_execution("__ASSET_JOB", asset_selection=[["raw_images"]])
    deadline, status = time.time() + 300, None
    while time.time() < deadline:
        status = webserver.get_run_status(run_id).value
        if status in ("SUCCESS", "FAILURE", "CANCELED"):
            break
        time.sleep(1)
    assert status == "SUCCESS", (webserver.log_path.read_text()[-3000:] if status else "no status")
