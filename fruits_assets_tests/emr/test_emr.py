"""The emr deployment without AWS: moto's server on 127.0.0.1 for S3 and EMR, a harness playing the
cluster (see emr_harness/harness.py), the real CLI and the real emr_pyspark_step_launcher."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from deltalake import DeltaTable

from fruits_assets.images import sample_data
from fruits_assets.storage.codecs import read_frame, read_model
from fruits_assets.storage.tables import Lake
from fruits_assets_tests.conftest import REPO, RUN_DIR, add_bad_files, run_env
from fruits_assets_tests.emr.account import prepare_account
from fruits_assets_tests.emr_harness.harness import FakeEmrCluster, MotoAws

BUCKET = "fruits-assets-test"
INIT_BUCKET = "fruits-assets-init-test"
REGION = "eu-west-3"
KMS_KEY = f"arn:aws:kms:{REGION}:111122223333:key/test"  # `emr up` needs one (local-disk encryption)
CLI = str(Path(sys.executable).with_name("fruits-assets"))
DAGSTER = str(Path(sys.executable).with_name("dagster"))


@pytest.fixture(scope="module")
def aws():
    with MotoAws(REGION) as moto:
        # moto serves plain http, which the TLS-only policy of `s3 init` rightly refuses (asserted
        # below): the flow tests use a bucket made without that policy.
        moto.client("s3").create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
        moto.subnet = prepare_account(moto)  # block public access on, a private subnet
        yield moto


def emr_env(tmp_path, aws, images=None, weights="random", **extra):
    env = run_env(
        tmp_path,
        images or tmp_path,
        weights,
        FRUITS_DEPLOYMENT="emr",
        FRUITS_S3_BUCKET=BUCKET,
        FRUITS_AWS_REGION=REGION,
        FRUITS_EMR_SUBNET_IDS=aws.subnet,
        **aws.env,
    )
    if images is None:
        env.pop("FRUITS_IMAGES_DIR")
    env.update(extra)
    return env


def materialize_cli(select: str, env: dict, run_config: dict | None = None, timeout: int = 600):
    """The real `dagster asset materialize` CLI from the run folder: (returncode, stdout + stderr)."""
    extra = ["--config-json", json.dumps(run_config)] if run_config else []
    proc = subprocess.run(
        [DAGSTER, "asset", "materialize", "-m", "fruits_assets.definitions", "--select", select, *extra],
        env=env,
        cwd=RUN_DIR,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return proc.returncode, proc.stdout + proc.stderr


def cli(args, env):
    return subprocess.run([CLI, *args], env=env, capture_output=True, text=True, timeout=300, cwd=RUN_DIR)


def test_s3_init_makes_a_private_encrypted_tls_only_bucket(tmp_path, aws):
    from botocore.exceptions import ClientError

    env = emr_env(tmp_path, aws, FRUITS_S3_BUCKET=INIT_BUCKET)
    first = cli(["s3", "init"], env)
    assert first.returncode == 0, first.stderr
    assert f"created s3://{INIT_BUCKET} in {REGION}" in first.stdout
    again = cli(["s3", "init"], env)  # idempotent
    assert again.returncode == 0 and "already exists" in again.stdout
    s3 = aws.client("s3")
    with pytest.raises(ClientError, match="Forbidden|AccessDenied"):
        s3.put_object(Bucket=INIT_BUCKET, Key="x", Body=b"over plain http")  # the policy is enforced
    BUCKET = INIT_BUCKET  # noqa: N806 - the assertions below read the initialised bucket
    assert s3.get_bucket_location(Bucket=BUCKET)["LocationConstraint"] == REGION
    block = s3.get_public_access_block(Bucket=BUCKET)["PublicAccessBlockConfiguration"]
    assert all(block.values()) and len(block) == 4
    rule = s3.get_bucket_encryption(Bucket=BUCKET)["ServerSideEncryptionConfiguration"]["Rules"][0]
    assert rule["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    [statement] = json.loads(s3.get_bucket_policy(Bucket=BUCKET)["Policy"])["Statement"]
    assert statement["Effect"] == "Deny" and statement["Condition"]["Bool"]["aws:SecureTransport"] == "false"
    lifecycle = {r["ID"]: r for r in s3.get_bucket_lifecycle_configuration(Bucket=BUCKET)["Rules"]}[
        "expire-step-launcher-staging"
    ]
    assert lifecycle["Filter"]["Prefix"] == "emr_staging/" and lifecycle["Expiration"]["Days"] > 0


def plan(env, *flags):
    proc = cli([*flags, "emr", "plan", "--json"], env)
    return proc, (json.loads(proc.stdout) if proc.returncode == 0 else None)


def test_emr_plan_is_complete_and_calls_nothing(tmp_path, aws):
    # A dead endpoint proves the plan is built without calling AWS.
    env = emr_env(
        tmp_path, aws, AWS_ENDPOINT_URL="http://127.0.0.1:9", FRUITS_EMR_MIN_UNITS="3", FRUITS_EMR_MAX_UNITS="12"
    )
    proc, out = plan(env)
    assert proc.returncode == 0, proc.stderr
    req = out["RunJobFlow"]
    assert req["ReleaseLabel"].startswith("emr-7.")
    assert {a["Name"] for a in req["Applications"]} == {"Hadoop", "Spark"}
    fleets = {f["InstanceFleetType"]: f for f in req["Instances"]["InstanceFleets"]}
    assert fleets["MASTER"]["TargetSpotCapacity"] == 0 and fleets["MASTER"]["TargetOnDemandCapacity"] == 1
    assert fleets["CORE"]["TargetSpotCapacity"] == 0 and fleets["CORE"]["TargetOnDemandCapacity"] >= 1
    task = fleets["TASK"]
    assert task["TargetSpotCapacity"] > 0 and task["TargetOnDemandCapacity"] == 0
    spot = task["LaunchSpecifications"]["SpotSpecification"]
    assert spot["AllocationStrategy"] == "capacity-optimized" and spot["TimeoutAction"] == "SWITCH_TO_ON_DEMAND"
    assert len(task["InstanceTypeConfigs"]) >= 3
    assert "LaunchSpecifications" not in fleets["MASTER"] and "LaunchSpecifications" not in fleets["CORE"]
    limits = req["ManagedScalingPolicy"]["ComputeLimits"]
    assert (limits["MinimumCapacityUnits"], limits["MaximumCapacityUnits"]) == (3, 12)
    assert limits["MaximumOnDemandCapacityUnits"] == fleets["CORE"]["TargetOnDemandCapacity"]
    assert req["AutoTerminationPolicy"]["IdleTimeout"] > 0
    assert req["LogUri"] == f"s3://{BUCKET}/emr/logs/"
    [bootstrap] = req["BootstrapActions"]
    assert bootstrap["ScriptBootstrapAction"]["Path"] == f"s3://{BUCKET}/emr/bootstrap/bootstrap.sh"
    spark_env = {c["Classification"]: c for c in req["Configurations"]}
    exports = spark_env["spark-env"]["Configurations"][0]["Properties"]
    assert exports["PYSPARK_PYTHON"].endswith("python") and exports["FRUITS_DEPLOYMENT"] == "emr"
    assert "spark.sql.execution.arrow.maxRecordsPerBatch" in spark_env["spark-defaults"]["Properties"]
    # Delta enabled for Spark on the cluster: the outputs read with spark.read.format("delta")
    assert spark_env["delta-defaults"]["Properties"] == {"delta.enabled": "true"}
    assert (
        spark_env["spark-defaults"]["Properties"]["spark.sql.extensions"] == "io.delta.sql.DeltaSparkSessionExtension"
    )
    assert {t["Key"] for t in req["Tags"]} >= {"project"}
    cost = out["estimated_cost"]
    assert 0 < cost["at_start"]["usd_per_hour"] < cost["at_max_scale"]["usd_per_hour"]
    assert cost["at_max_scale"]["usd_per_hour"] < cost["at_max_scale_without_spot"]["usd_per_hour"]
    # Cost per million images at 12 units (2 core + 10 Spot task nodes of 4 vCPUs each).
    one, ten = cost["featurize"]
    assert (one["images"], ten["images"]) == (1_000_000, 10_000_000) and one["executor_vcpus"] == 48
    assert one["images_per_s"] == round(48 * 110 * 0.7)
    assert ten["wall_s"] == pytest.approx(10 * one["wall_s"], rel=0.01)
    assert 0 < one["usd_spot"] < one["usd_on_demand"] and ten["usd_s3_requests"] == pytest.approx(4.2, rel=0.01)
    assert "benchmarks/graph.py" in one["assumption"]


def test_region_outside_eu_is_refused_unless_allowed(tmp_path, aws):
    env = emr_env(tmp_path, aws, FRUITS_AWS_REGION="us-east-1")
    proc, _ = plan(env)
    assert proc.returncode == 2 and "outside the EU" in proc.stderr and "FRUITS_ALLOW_NON_EU_REGION" in proc.stderr
    proc, out = plan(env, "--allow-non-eu-region")
    assert proc.returncode == 0 and out["RunJobFlow"]["Name"] == "fruits-assets"
    proc, _ = plan(dict(env, FRUITS_ALLOW_NON_EU_REGION="1"))
    assert proc.returncode == 0


def test_missing_bucket_is_a_one_line_error(tmp_path, aws):
    env = emr_env(tmp_path, aws)
    env.pop("FRUITS_S3_BUCKET")
    proc, _ = plan(env)
    assert (
        proc.returncode == 2
        and proc.stderr.strip() == "error: FRUITS_S3_BUCKET is not set (required for FRUITS_DEPLOYMENT=emr)"
    )


def test_unreachable_image_bucket_is_one_line_through_the_cli(tmp_path, aws):
    """The emr deployment on a bucket that does not exist: one line naming the store and what to check."""
    env = emr_env(
        tmp_path,
        aws,
        FRUITS_S3_BUCKET="no-such-fruits-bucket",
        FRUITS_EMR_CLUSTER_ID="j-NOTUSED",
        PYTHONWARNINGS="ignore::FutureWarning",
    )
    subprocess.run([CLI, "home", "init"], env=env, check=True, capture_output=True)
    returncode, output = materialize_cli("raw_images", env, timeout=300)
    lines = output.strip().splitlines()
    assert returncode != 0 and len(lines) == 1, lines
    # the run's first write (its owner record, in the outputs root of the same bucket) is refused
    assert lines[0].startswith("fruits-assets: error: outputs root s3://no-such-fruits-bucket/assets cannot be written")
    assert "FRUITS_S3_BUCKET, region and credentials" in lines[0]


def test_emr_up_status_down(tmp_path, aws):
    env = emr_env(tmp_path, aws, FRUITS_EMR_KMS_KEY_ARN=KMS_KEY)
    up = cli(["emr", "up", "--poll-seconds", "0.2"], env)
    assert up.returncode == 0, up.stderr
    cluster_id = up.stdout.strip()
    assert cluster_id.startswith("j-")
    staged = aws.client("s3").list_objects_v2(Bucket=BUCKET, Prefix="emr/bootstrap/")["Contents"]
    assert {o["Key"] for o in staged} == {
        "emr/bootstrap/bootstrap.sh",
        "emr/bootstrap/requirements-pip.txt",
        "emr/bootstrap/requirements-emr.txt",
    }
    status = cli(["emr", "status", "--cluster-id", cluster_id], env)
    assert status.returncode == 0 and json.loads(status.stdout)["state"] == "WAITING"
    down = cli(["emr", "down"], dict(env, FRUITS_EMR_CLUSTER_ID=cluster_id))
    assert down.returncode == 0
    state = json.loads(cli(["emr", "status", "--cluster-id", cluster_id], env).stdout)["state"]
    assert state.startswith("TERMINAT")


def test_emr_up_sends_the_planned_request(aws, monkeypatch):
    """moto does not keep auto-termination or managed scaling: record what RunJobFlow really sent."""
    from fruits_assets.emr.cluster import create_cluster
    from fruits_assets.emr.spec import ClusterSpec

    monkeypatch.setenv("FRUITS_S3_BUCKET", BUCKET)
    monkeypatch.setenv("FRUITS_AWS_REGION", REGION)
    monkeypatch.setenv("FRUITS_EMR_KMS_KEY_ARN", KMS_KEY)
    monkeypatch.setenv("FRUITS_EMR_SUBNET_IDS", aws.subnet)
    sent = []
    emr = aws.client("emr")
    emr.meta.events.register("provide-client-params.emr.RunJobFlow", lambda params, **_: sent.append(params))
    cluster_id = create_cluster(
        emr, aws.client("s3"), ClusterSpec.from_env(), poll_s=0.2, timeout_s=60, ec2_client=aws.client("ec2")
    )
    [request] = sent
    assert request["AutoTerminationPolicy"] == {"IdleTimeout": 3600}
    assert request["ManagedScalingPolicy"]["ComputeLimits"]["MaximumCapacityUnits"] == 20
    spot = {f["InstanceFleetType"]: f["TargetSpotCapacity"] for f in request["Instances"]["InstanceFleets"]}
    assert spot == {"MASTER": 0, "CORE": 0, "TASK": 2}
    cluster = emr.describe_cluster(ClusterId=cluster_id)["Cluster"]
    assert cluster["Status"]["State"] == "WAITING" and cluster["ReleaseLabel"] == request["ReleaseLabel"]
    assert {t["Key"]: t["Value"] for t in cluster["Tags"]}["project"] == "fruits-assets"
    emr.terminate_job_flows(JobFlowIds=[cluster_id])


def test_definitions_validate_in_emr_deployment(tmp_path, aws):
    env = emr_env(tmp_path, aws, FRUITS_EMR_CLUSTER_ID="j-TESTCLUSTER")
    proc = subprocess.run(
        [DAGSTER, "definitions", "validate", "-m", "fruits_assets.definitions"],
        env=env,
        cwd=RUN_DIR,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    env.pop("FRUITS_EMR_CLUSTER_ID")
    proc = subprocess.run(
        [DAGSTER, "definitions", "validate", "-m", "fruits_assets.definitions"],
        env=env,
        cwd=RUN_DIR,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode != 0 and "FRUITS_EMR_CLUSTER_ID is not set" in proc.stdout + proc.stderr


@pytest.fixture(scope="module")
def emr_cluster(tmp_path_factory, aws):
    """An EMR cluster created by `fruits-assets emr up` on moto, played by the harness."""
    tmp = tmp_path_factory.mktemp("emr")
    env = emr_env(tmp, aws, FRUITS_EMR_KMS_KEY_ARN=KMS_KEY)
    up = cli(["emr", "up", "--poll-seconds", "0.2"], env)
    assert up.returncode == 0, up.stderr
    step_env = {**aws.env, "FRUITS_DEPLOYMENT": "emr", "FRUITS_S3_BUCKET": BUCKET, "FRUITS_AWS_REGION": REGION}
    harness = FakeEmrCluster(aws.endpoint, REGION, tmp / "cluster", step_env)
    harness.start()
    yield up.stdout.strip(), harness
    harness.stop()


def test_whole_graph_through_the_emr_step_launcher(tmp_path, aws, emr_cluster, seeded_weights, monkeypatch):
    cluster_id, harness = emr_cluster
    images = tmp_path / "Fruits 360"
    sample_data.generate(images, 20)
    bad = add_bad_files(images)
    env = emr_env(tmp_path, aws, images=images, weights=str(seeded_weights), FRUITS_EMR_CLUSTER_ID=cluster_id)
    select = "*"
    returncode, log = materialize_cli(select, env)
    assert returncode == 0, log[-6000:] + "".join(
        p.read_text()[-3000:] for p in (harness.workdir / "steps").rglob("stderr.txt")
    )
    assert "RUN_SUCCESS" in log
    # the Spark steps ran on the "cluster", through the launcher, and succeeded
    assert [state for _, state, _ in harness.completed] == ["COMPLETED"] * 4
    steps = aws.client("emr").list_steps(ClusterId=cluster_id)["Steps"]
    spark_assets = {"image_features", "pca_model", "image_pca", "feature_probe"}
    assert {name for name in spark_assets if any(s["Name"].endswith(name) for s in steps)} == spark_assets
    # its events came back into this run: check results computed on the cluster, then its logs
    assert "Asset check 'counts_reconcile' on 'image_features' passed" in log
    assert f"featurized {20 + len(bad)} images ({len(bad)} rejected)" in log
    assert "Spark Driver stdout" in log
    # images uploaded with labels intact; outputs published in S3
    s3 = aws.client("s3")
    keys = {
        o["Key"]
        for p in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix="raw/")
        for o in p.get("Contents", [])
    }
    assert "raw/Training/Apple Braeburn/1_100.jpg" in keys and len(keys) == 20 + len(bad)
    assert any("Clémentine" in k for k in keys)
    # every output is a Delta table in S3, committed by the steps: delta-rs alone reads it back
    for key, value in aws.env.items():  # moto's endpoint and fake credentials for delta-rs here
        monkeypatch.setenv(key, value)
    lake = Lake(f"s3://{BUCKET}/assets", aws.endpoint, REGION)
    features = DeltaTable(f"s3://{BUCKET}/assets/image_features", storage_options=lake.storage_options())
    assert features.version() == 0 and len(features.to_pandas()) == 20
    # PCA fitted and projected on the cluster: the model in its open format, 20 projected rows
    assert "Asset check 'pca_rows_match' on 'image_pca' passed" in log
    assert "Asset check 'probe_above_chance' on 'feature_probe'" in log  # the probe ran there too
    assert read_model(lake, lake.snapshot("pca_model")).k >= 1
    assert len(read_frame(lake, lake.snapshot("image_pca"))) == 20
    assert lake.snapshot("feature_probe").info["report"]["eval_rows"] > 0
    # the steps on the cluster only asked; this process committed and said so in the metadata
    from dagster import AssetKey, DagsterInstance

    monkeypatch.setenv("DAGSTER_HOME", env["DAGSTER_HOME"])
    with DagsterInstance.get() as instance:
        event = instance.get_latest_materialization_event(AssetKey("image_features"))
        meta = event.asset_materialization.metadata
        assert (meta["table_version"].value, meta["committed"].value) == (0, "version 0")
    # (pyarrow leaves an empty "folder" marker when it deletes the last object under a prefix)
    assert not [k for k in table_objects(s3, "image_features", "_pending/") if not k.endswith("/")]
    # every parquet file in the table folders is committed: nothing half-written left behind
    for asset in ("image_features", "image_pca", "feature_probe"):
        committed = {u.rsplit("/", 1)[-1] for u in lake.snapshot(asset).file_uris()}
        listed = {k.rsplit("/", 1)[-1] for k in table_objects(s3, asset) if k.endswith(".parquet")}
        assert listed == committed, asset
    # what users open on the cluster's JupyterHub: the notebook, unchanged, on the S3 outputs (catalog,
    # probe report, figures, image thumbnails read from s3://.../raw/)
    import nbformat
    from nbclient import NotebookClient

    notebook = nbformat.read(REPO / "notebooks" / "explore.ipynb", as_version=4)
    NotebookClient(
        notebook, kernel_name="python3", timeout=300, resources={"metadata": {"path": str(tmp_path)}}
    ).execute(env=env)
    text = "".join(o.get("text", "") for c in notebook.cells for o in c.get("outputs", []))
    assert f"Delta tables under s3://{BUCKET}/assets (newest versions)" in text and "20 images with features" in text

    # a second run uploads nothing and, incrementally on S3, featurizes only the new image and
    # commits just its part (the steps it checks: PCA, probe and report were run above)
    data_before = table_objects(s3, "image_features")
    late = images / "Test" / "Kiwi" / "late_100.jpg"
    late.write_bytes(next((images / "Training" / "Kiwi").glob("*.jpg")).read_bytes())  # a new path
    returncode, log = materialize_cli("raw_images,image_features,image_rejects", env)
    assert returncode == 0, log[-6000:]
    assert f"1 uploaded, {20 + len(bad)} already there" in log
    assert "incremental: 1 images to featurize; 20 feature rows carried over" in log
    assert f"{len(bad)} rejections carried over" in log
    features_after = lake.snapshot("image_features")
    assert features_after.version == 1 and features_after.rows == 21
    # Only what changed was written: the new image's part; the 20 rows already there stay where
    # they are (no copy). Measured in bytes of objects S3 received for the table's data.
    written = {k: size for k, size in table_objects(s3, "image_features").items() if k not in data_before}
    total = sum(f.size for f in features_after.files)
    assert len(written) == 1 and sum(written.values()) < 0.2 * total, (written, total)  # one PUT of data
    assert features_after.inputs["raw_images"] >= 1  # the lineage travels with the commit


def test_int8_runs_unchanged_on_the_cluster(tmp_path, aws, emr_cluster, sample_images, seeded_weights, monkeypatch):
    """feature_model.precision=int8 through the EMR step launcher: the cluster's tasks run the int8
    flatbuffer the Dagster process committed, byte for byte (its features are what LiteRT gives with
    that model here). The images are the sample images test_precision.py calibrated on, so the
    conversion comes from this session's cache (the images the whole-graph test left in the bucket
    do not change the 16-image sample)."""
    import shutil

    import numpy as np

    from fruits_assets.images.decode import load_rgb
    from fruits_assets.model.litert import LiteRTFeatureExtractor

    cluster_id, harness = emr_cluster
    images = tmp_path / "images"
    shutil.copytree(sample_images, images)
    env = emr_env(
        tmp_path,
        aws,
        images=images,
        weights=str(seeded_weights),
        FRUITS_EMR_CLUSTER_ID=cluster_id,
        FRUITS_CALIBRATION_IMAGES="16",
    )
    steps_before = len(harness.completed)
    returncode, log = materialize_cli(
        "raw_images,feature_model,image_features,image_rejects",
        env,
        {"ops": {"feature_model": {"config": {"precision": "int8"}}}},
    )
    assert returncode == 0, log[-6000:]
    assert [state for _, state, _ in harness.completed[steps_before:]] == ["COMPLETED"]  # image_features' step
    for key, value in aws.env.items():
        monkeypatch.setenv(key, value)
    lake = Lake(f"s3://{BUCKET}/assets", aws.endpoint, REGION)
    model = read_model(lake, lake.snapshot("feature_model"))
    assert model.provenance["precision"] == "int8" and model.provenance["calibration"]["images"] == 16
    features = read_frame(lake, lake.snapshot("image_features"))
    assert lake.snapshot("image_features").info["precision"] == "int8"
    ours = features[features["path"].str.startswith(f"s3://{BUCKET}/raw/Training/Kiwi/")].sort_values("path")[:6]
    local = [images / p.split("/raw/", 1)[1] for p in ours["path"]]
    pixels = np.stack([load_rgb(f.read_bytes()) for f in local])
    expected = LiteRTFeatureExtractor(model.model_bytes, batch_size=1)(pixels)
    np.testing.assert_allclose(np.stack(ours["features"].to_numpy()), expected, rtol=1e-5, atol=1e-6)


def table_objects(s3, asset: str, under: str = "") -> dict[str, int]:
    """key -> size of the data files (not the log) under a table's prefix."""
    return {
        o["Key"]: o["Size"]
        for p in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=f"assets/{asset}/{under}")
        for o in p.get("Contents", [])
        if "/_delta_log/" not in o["Key"] and (o["Key"].endswith(".parquet") or under)
    }
