"""A real dagster-webserver on 127.0.0.1: its GraphQL API lists the assets and runs a materialization."""

import time

import pytest

from fruits_assets_tests.conftest import run_env, running_webserver

ASSET_NODES = "{ assetNodes { assetKey { path } groupName hasAssetChecks } }"


@pytest.fixture
def webserver(tmp_path, sample_images, seeded_weights):
    env = run_env(tmp_path, sample_images, seeded_weights)
    (tmp_path / "dagster_home" / "dagster.yaml").write_text("")
    with running_webserver(tmp_path, env) as client:
        yield client


def test_graphql_lists_assets_and_launches_a_materialization(webserver):
    nodes = webserver._execute(ASSET_NODES)["assetNodes"]
    by_name = {n["assetKey"]["path"][-1]: n for n in nodes}
    assert set(by_name) >= {"raw_images", "feature_model", "image_features", "image_rejects", "pca_model", "image_pca"}
    assert {n["groupName"] for n in by_name.values()} == {"fruits"}
    assert by_name["image_features"]["hasAssetChecks"]

    run_id = webserver.submit_job_execution("__ASSET_JOB", asset_selection=[["raw_images"]])
    deadline, status = time.time() + 300, None
    while time.time() < deadline:
        status = webserver.get_run_status(run_id).value
        if status in ("SUCCESS", "FAILURE", "CANCELED"):
            break
        time.sleep(1)
    assert status == "SUCCESS", webserver.log_path.read_text()[-3000:] if status else "no status"
