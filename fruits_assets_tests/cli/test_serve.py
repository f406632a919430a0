"""The production topology for real (issue 22): PostgreSQL on 127.0.0.1, the code server, the daemon
and the webserver, started by ``python -m fruits_assets.cli.serve start`` (what ``make serve`` runs)
and driven through the webserver's GraphQL.

One automation-launched run of the data assets on a handful of images carries the checks: the
daemon is killed (-9) while the run is STARTED and restarted; two runs requested meanwhile wait in
the queue and run one at a time after it; ``stop`` leaves no process behind."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

from fruits_assets.cli.serve import dagster_argv, process_start_time
from fruits_assets.images import sample_data
from fruits_assets.storage import catalog
from fruits_assets_tests.conftest import REPO, RUN_DIR, free_port

N_IMAGES = 12
FINISHED = {"SUCCESS", "FAILURE", "CANCELED"}
# Automation's first run on a fresh instance: the data assets up to the projection. The probe waits
# for its schedule (set to a tick the test never meets) and its row threshold is off.
FIRST_RUN = {"raw_images", "feature_model", "image_features", "image_rejects", "pca_model", "image_pca"}


def serve(env: dict, *args: str, timeout: float = 420) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "fruits_assets.cli.serve", *args],
        cwd=RUN_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


class Stack:
    def __init__(self, root: Path, env: dict):
        self.root, self.env = root, env
        self.url = f"http://127.0.0.1:{env['FRUITS_SERVE_PORT']}/graphql"

    def pid(self, service: str) -> int:
        return int((self.root / "serve" / "pids" / f"{service}.pid").read_text().split()[0])

    def graphql(self, query: str, variables: dict | None = None) -> dict:
        body = json.dumps({"query": query, "variables": variables or {}}).encode()
        request = urllib.request.Request(self.url, data=body, headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=60) as response:
            payload = json.load(response)
        assert "errors" not in payload, payload
        return payload["data"]

    def runs(self) -> list[dict]:
        query = """{ runsOrError(limit: 50) { ... on Runs { results {
            runId status startTime endTime tags { key value } assetSelection { path } } } } }"""
        return self.graphql(query)["runsOrError"]["results"]

    def wait(self, what: str, predicate, timeout_s: float = 300, every_s: float = 1.0):
        deadline = time.time() + timeout_s
        while time.time() < deadline:
            found = predicate()
            if found:
                return found
            time.sleep(every_s)
        logs = {p.name: p.read_text()[-1500:] for p in (self.root / "serve" / "logs").glob("*.log")}
        pytest.fail(f"{what}: not within {timeout_s:.0f} s; runs {self.runs()}; logs {logs}")

    def sensor_state(self, name: str) -> dict:
        query = """query($selector: SensorSelector!) { sensorOrError(sensorSelector: $selector) {
            ... on Sensor { sensorState { id selectorId status } } } }"""
        selector = {"repositoryLocationName": "fruits_assets", "repositoryName": "__repository__", "sensorName": name}
        return self.graphql(query, {"selector": selector})["sensorOrError"]["sensorState"]

    def launch(self, asset: str) -> str:
        mutation = """mutation($params: ExecutionParams!) { launchRun(executionParams: $params) {
            __typename ... on LaunchRunSuccess { run { runId } } ... on PythonError { message } } }"""
        params = {
            "selector": {
                "repositoryLocationName": "fruits_assets",
                "repositoryName": "__repository__",
                "jobName": "__ASSET_JOB",
                "assetSelection": [{"path": [asset]}],
            },
        }
        result = self.graphql(mutation, {"params": params})["launchRun"]
        assert result["__typename"] == "LaunchRunSuccess", result
        return result["run"]["runId"]


@pytest.fixture(scope="module")
def stack(seeded_weights):
    # Not under pytest's 0700 tmp folder: under root, PostgreSQL runs as Debian's `postgres` user,
    # which must reach its data folder.
    root = Path(tempfile.mkdtemp(prefix="fruits-serve-"))
    os.chmod(root, 0o755)
    sample_data.generate(root / "images", N_IMAGES)  # the watched folder, before the stack starts
    env = dict(os.environ)
    for name in ("FRUITS_AUTOMATION", "FRUITS_POSTGRES_DSN", "FRUITS_MAX_CONCURRENT_RUNS"):
        env.pop(name, None)  # the defaults `make serve` runs with
    env.update(
        PYTHONPATH=str(REPO),
        DAGSTER_HOME=str(root / "home"),
        FRUITS_SERVE_DIR=str(root / "serve"),
        FRUITS_DATA_ROOT=str(root / "data"),
        FRUITS_IMAGES_DIR=str(root / "images"),
        FRUITS_WEIGHTS=str(seeded_weights),
        FRUITS_DEPLOYMENT="local",
        FRUITS_POSTGRES_PORT=str(free_port()),
        FRUITS_SERVE_PORT=str(free_port()),
        FRUITS_CODE_PORT=str(free_port()),
        FRUITS_SENSOR_INTERVAL_S="5",
        FRUITS_AUTOMATION_INTERVAL_S="5",
        FRUITS_PROBE_MIN_CHANGED="off",
        FRUITS_PROBE_CRON="0 0 1 1 *",
        FRUITS_SPARK_MASTER="local[2]",
    )
    started = serve(env, "start", "--timeout", "300")
    stack = Stack(root, env)
    try:
        assert started.returncode == 0, started.stdout + started.stderr
        yield stack
    finally:
        recorded = [s for s in ("code", "daemon", "webserver") if (root / "serve" / "pids" / f"{s}.pid").exists()]
        pids = [stack.pid(s) for s in recorded]
        stopped = serve(env, "stop")
        postmaster = root / "serve" / "postgres" / "data" / "postmaster.pid"
        survivors = [pid for pid in pids if process_start_time(pid)]  # a zombie awaiting its reaper is stopped
        still_up = postmaster.exists()
        shutil.rmtree(root, ignore_errors=True)
        assert stopped.returncode == 0, stopped.stdout + stopped.stderr
        assert not survivors, f"served processes survived stop: {survivors}"
        assert not still_up, "PostgreSQL still running after stop"


def test_served_stack_automation_queue_and_a_killed_daemon(stack, monkeypatch):
    # The instance is PostgreSQL's (its file readable by its owner only), the queue runs one run at a
    # time, and the code location is served by the code server.
    home = Path(stack.env["DAGSTER_HOME"])
    instance_yaml = (home / "dagster.yaml").read_text()
    assert "postgres_url" in instance_yaml and "QueuedRunCoordinator" in instance_yaml
    assert "max_concurrent_runs: 1" in instance_yaml and oct((home / "dagster.yaml").stat().st_mode)[-3:] == "600"
    location = stack.graphql(
        """{ workspaceOrError { ... on Workspace { locationEntries { name locationOrLoadError {
            ... on RepositoryLocation { repositories { name } } ... on PythonError { message } } } } } }"""
    )["workspaceOrError"]["locationEntries"]
    assert [entry["name"] for entry in location] == ["fruits_assets"], location

    # Each service runs the command `serve run SERVICE` execs: what each Compose service runs.
    for name in ("DAGSTER_HOME", "FRUITS_SERVE_HOST", "FRUITS_SERVE_PORT", "FRUITS_CODE_PORT"):
        monkeypatch.setenv(name, stack.env.get(name, ""))
    for service in ("code", "daemon", "webserver"):
        # The Dagster executables are scripts: the kernel runs their interpreter, then the script's argv.
        cmdline = Path(f"/proc/{stack.pid(service)}/cmdline").read_bytes().decode().rstrip("\0").split("\0")
        assert cmdline[1:] == dagster_argv(service, home), (service, cmdline)

    # The sensor observes the images; automation launches one run of the data assets.
    first = stack.wait("an automation run", lambda: [r for r in stack.runs() if r["status"] == "STARTED"])[0]
    tags = {t["key"]: t["value"] for t in first["tags"]}
    assert tags.get("dagster/sensor_name") == "automation_sensor", tags
    assert {a["path"][-1] for a in first["assetSelection"]} == FIRST_RUN

    # Automation is on by default under serve. Stopped now, so that the runs below (by hand) do not
    # request their downstream assets: the test then knows every run there is.
    state = stack.sensor_state("automation_sensor")
    assert state["status"] == "RUNNING", state
    stopped = stack.graphql("mutation($id: String) { stopSensor(id: $id) { __typename } }", {"id": state["id"]})
    assert stopped["stopSensor"]["__typename"] == "StopSensorMutationResult", stopped
    assert stack.sensor_state("automation_sensor")["status"] == "STOPPED"

    # Two runs requested together while it runs: both wait in the queue.
    queued = [stack.launch("raw_images"), stack.launch("raw_images")]
    status = {r["runId"]: r["status"] for r in stack.runs()}
    assert [status[q] for q in queued] == ["QUEUED", "QUEUED"], status

    # kill -9 of the daemon during the run, then a restart (`start` restarts only what is not running).
    daemon = stack.pid("daemon")
    os.kill(daemon, signal.SIGKILL)
    restarted = serve(stack.env, "start", "--timeout", "300")
    assert restarted.returncode == 0, restarted.stdout + restarted.stderr
    assert "code       already running" in restarted.stdout and stack.pid("daemon") != daemon

    runs = stack.wait(
        "every run resolved",
        lambda: (rs := stack.runs()) and all(r["status"] in FINISHED for r in rs) and len(rs) >= 3 and rs,
        timeout_s=420,
        every_s=3,
    )
    by_id = {r["runId"]: r for r in runs}
    assert by_id[first["runId"]]["status"] == "SUCCESS", by_id
    assert [by_id[q]["status"] for q in queued] == ["SUCCESS", "SUCCESS"], by_id
    # Never two at once: each run started after the previous one ended.
    spans = sorted((r["startTime"], r["endTime"]) for r in by_id.values())
    assert all(later[0] >= earlier[1] for earlier, later in zip(spans, spans[1:])), spans

    # The assets' materializations, as the UI shows them, are those of the automation run, and the
    # tables are at the versions it committed: nothing half published.
    for asset in ("image_features", "pca_model", "image_pca"):
        query = """query($key: AssetKeyInput!) { assetOrError(assetKey: $key) { ... on Asset {
            assetMaterializations(limit: 1) { runId } } } }"""
        (materialization,) = stack.graphql(query, {"key": {"path": [asset]}})["assetOrError"]["assetMaterializations"]
        assert materialization["runId"] == first["runId"], (asset, materialization)
    data_root = stack.env["FRUITS_DATA_ROOT"]
    assert catalog.consistent(root=data_root) == {"image_features": 0, "pca_model": 0, "image_pca": 0}
    assert len(catalog.load("image_pca", root=data_root)) == N_IMAGES

    # The UI says which instance and data root a run used (raw_images' metadata, and its log).
    query = """{ assetOrError(assetKey: {path: ["raw_images"]}) { ... on Asset { assetMaterializations(limit: 1) {
        metadataEntries { label ... on TextMetadataEntry { text } } } } } }"""
    (latest,) = stack.graphql(query)["assetOrError"]["assetMaterializations"]
    (where,) = [e["text"] for e in latest["metadataEntries"] if e["label"] == "instance"]
    assert where == f"instance DAGSTER_HOME={home}; data root FRUITS_DATA_ROOT={data_root}", where
