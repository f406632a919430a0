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


def finished_status(client, run_id: str, timeout_s: float = 300) -> str | None:
    """The run's status once it has finished (None if it did not within ``timeout_s``)."""
    deadline, status = time.time() + timeout_s, None
    while time.time() < deadline:
        status = client.get_run_status(run_id).value
        if status in ("SUCCESS", "FAILURE", "CANCELED"):
            return status
        time.sleep(1)
    return None


def test_graphql_lists_assets_and_launches_a_materialization(webserver):
    nodes = webserver._execute(ASSET_NODES)["assetNodes"]
    by_name = {n["assetKey"]["path"][-1]: n for n in nodes}
    assert set(by_name) >= {"raw_images", "feature_model", "image_features", "image_rejects", "pca_model", "image_pca"}
    assert {n["groupName"] for n in by_name.values()} == {"fruits"}
    assert by_name["image_features"]["hasAssetChecks"]

    run_id = webserver.submit_job_execution("__ASSET_JOB", asset_selection=[["raw_images"]])
    status = finished_status(webserver, run_id)
    assert status == "SUCCESS", webserver.log_path.read_text()[-3000:] if status else "no status"


FAILURE_EVENTS = """
query ($runId: ID!) {
  logsForRun(runId: $runId) {
    ... on EventConnection { events { __typename ... on ExecutionStepFailureEvent { error { message } } } }
  }
}
"""


def test_the_ui_shows_a_mistake_as_its_one_line(webserver, tmp_path):
    """What the UI shows for a failed step is the same sentence the CLI ends with, not a trace."""
    missing = tmp_path / "no-such-weights.h5"
    run_id = webserver.submit_job_execution(
        "__ASSET_JOB",
        asset_selection=[["feature_model"]],
        run_config={"ops": {"feature_model": {"config": {"weights": str(missing)}}}},
    )
    assert finished_status(webserver, run_id) == "FAILURE"
    events = webserver._execute(FAILURE_EVENTS, {"runId": run_id})["logsForRun"]["events"]
    [message] = [e["error"]["message"] for e in events if e["__typename"] == "ExecutionStepFailureEvent"]
    first = message.strip().splitlines()[0]
    assert first.startswith("fruits_assets.defs.console.ExpectedFailure: weights file"), message
    assert str(missing) in first and "FRUITS_WEIGHTS" in first
