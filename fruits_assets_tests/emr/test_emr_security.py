"""The EMR security baseline (docs/emr.md), through the real CLI against moto's server: security
configuration (at-rest and optional in-transit encryption, IMDSv2), JupyterHub off unless asked for
with a real password, cluster visible to its creator only, versioned bucket, the operator's IAM
policy rendered from settings, and the on-demand cost line."""

import json
import os
import subprocess
import sys
import urllib.request

import pytest

from fruits_assets_tests.conftest import REPO
from fruits_assets_tests.emr.account import cli, emr_env, prepare_account
from fruits_assets_tests.emr_harness.harness import MotoAws

BUCKET = "fruits-assets-security-test"
INIT_BUCKET = "fruits-assets-security-init-test"
REGION = "eu-west-3"
KMS_KEY = f"arn:aws:kms:{REGION}:111122223333:key/test"  # AWS's documentation placeholder account
CERTS = "s3://fruits-assets-certs/emr/certs.zip"
PASSWORD = "not-the-default-0123"


@pytest.fixture(scope="module")
def aws():
    with MotoAws(REGION) as moto:
        moto.client("s3").create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
        moto.subnet = prepare_account(moto)  # block public access on, a private subnet
        yield moto
        # moto's state lives in this process, shared with test_emr.py's server: drop our clusters
        # (one holds a pending step the harness there would try to run).
        urllib.request.urlopen(urllib.request.Request(f"{moto.endpoint}/moto-api/reset", method="POST"))


def env_for(tmp_path, aws, **extra):
    return emr_env(tmp_path, aws, BUCKET, REGION, KMS_KEY, **extra)


def plan(env):
    proc = cli(["emr", "plan", "--json"], env)
    return proc, (json.loads(proc.stdout) if proc.returncode == 0 else None)


def one_line_error(proc, setting):
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and setting in lines[0], proc.stderr


def test_plan_has_the_security_configuration_and_the_request_names_it(tmp_path, aws):
    # A dead endpoint proves nothing is called.
    proc, out = plan(env_for(tmp_path, aws, AWS_ENDPOINT_URL="http://127.0.0.1:9"))
    assert proc.returncode == 0, proc.stderr
    sec, req = out["SecurityConfiguration"], out["RunJobFlow"]
    assert req["SecurityConfiguration"] == sec["Name"]
    enc = sec["SecurityConfiguration"]["EncryptionConfiguration"]
    assert enc["EnableAtRestEncryption"] is True
    at_rest = enc["AtRestEncryptionConfiguration"]
    assert at_rest["S3EncryptionConfiguration"] == {"EncryptionMode": "SSE-S3"}
    assert at_rest["LocalDiskEncryptionConfiguration"] == {
        "EncryptionKeyProviderType": "AwsKms",
        "AwsKmsKey": KMS_KEY,
        "EnableEbsEncryption": True,
    }
    # in transit: off by default
    assert enc["EnableInTransitEncryption"] is False and "InTransitEncryptionConfiguration" not in enc
    imds = sec["SecurityConfiguration"]["InstanceMetadataServiceConfiguration"]
    assert imds["MinimumInstanceMetadataServiceVersion"] == 2
    # only the creator may act on the cluster
    assert req["VisibleToAllUsers"] is False


def test_in_transit_encryption_is_on_with_a_certificate_zip(tmp_path, aws):
    _, default = plan(env_for(tmp_path, aws))
    proc, out = plan(env_for(tmp_path, aws, FRUITS_EMR_TLS_CERTS_S3=CERTS))
    assert proc.returncode == 0, proc.stderr
    enc = out["SecurityConfiguration"]["SecurityConfiguration"]["EncryptionConfiguration"]
    assert enc["EnableInTransitEncryption"] is True
    assert enc["InTransitEncryptionConfiguration"] == {
        "TLSCertificateConfiguration": {"CertificateProviderType": "PEM", "S3Object": CERTS}
    }
    # a changed document is a new security configuration (they cannot be edited in place)
    assert out["RunJobFlow"]["SecurityConfiguration"] != default["RunJobFlow"]["SecurityConfiguration"]
    one_line_error(
        plan(env_for(tmp_path, aws, FRUITS_EMR_TLS_CERTS_S3="s3://b/certs.pem"))[0], "FRUITS_EMR_TLS_CERTS_S3"
    )


def test_without_a_kms_key_plan_warns_and_up_refuses(tmp_path, aws):
    env = env_for(tmp_path, aws)
    env.pop("FRUITS_EMR_KMS_KEY_ARN")
    proc, out = plan(env)
    assert proc.returncode == 0, proc.stderr
    assert "warning" in proc.stderr and "FRUITS_EMR_KMS_KEY_ARN" in proc.stderr
    local = out["SecurityConfiguration"]["SecurityConfiguration"]["EncryptionConfiguration"][
        "AtRestEncryptionConfiguration"
    ]["LocalDiskEncryptionConfiguration"]
    assert "FRUITS_EMR_KMS_KEY_ARN" in local["AwsKmsKey"] and not local["AwsKmsKey"].startswith("arn:")
    emr = aws.client("emr")
    before = {c["Id"] for c in emr.list_clusters()["Clusters"]}
    up = cli(["emr", "up", "--no-wait"], env)
    one_line_error(up, "FRUITS_EMR_KMS_KEY_ARN")
    assert {c["Id"] for c in emr.list_clusters()["Clusters"]} == before
    with pytest.raises(emr.exceptions.InvalidRequestException):
        emr.describe_security_configuration(Name=out["SecurityConfiguration"]["Name"])
    # a key from another region cannot encrypt this cluster's disks
    one_line_error(
        plan(env_for(tmp_path, aws, FRUITS_EMR_KMS_KEY_ARN=KMS_KEY.replace(REGION, "eu-west-1")))[0],
        "FRUITS_EMR_KMS_KEY_ARN",
    )


def test_jupyterhub_is_off_by_default_and_needs_a_real_password(tmp_path, aws):
    _, out = plan(env_for(tmp_path, aws))
    assert {a["Name"] for a in out["RunJobFlow"]["Applications"]} == {"Hadoop", "Spark"}
    assert "Steps" not in out["RunJobFlow"]
    assert "jupyter-s3-conf" not in json.dumps(out["RunJobFlow"]["Configurations"])
    on = env_for(tmp_path, aws, FRUITS_EMR_JUPYTERHUB="1")
    one_line_error(plan(on)[0], "FRUITS_EMR_JUPYTERHUB_PASSWORD")
    one_line_error(plan(dict(on, FRUITS_EMR_JUPYTERHUB_PASSWORD="jupyter"))[0], "FRUITS_EMR_JUPYTERHUB_PASSWORD")
    one_line_error(plan(dict(on, FRUITS_EMR_JUPYTERHUB="maybe"))[0], "FRUITS_EMR_JUPYTERHUB")
    with_password = dict(on, FRUITS_EMR_JUPYTERHUB_PASSWORD=PASSWORD)
    proc, out = plan(with_password)
    assert proc.returncode == 0, proc.stderr
    # Livy (Spark over REST, no authentication) only when asked for: the project kernel does not need it
    assert {a["Name"] for a in out["RunJobFlow"]["Applications"]} == {"Hadoop", "Spark", "JupyterHub"}
    step, kernel = out["RunJobFlow"]["Steps"]  # the password first, then the project kernel
    assert step["ActionOnFailure"] == "TERMINATE_CLUSTER" and "chpasswd" in " ".join(step["HadoopJarStep"]["Args"])
    args = kernel["HadoopJarStep"]["Args"]
    assert kernel["Name"] == "jupyterhub-project-kernel" and "ipykernel install --name fruits-assets" in args[2]
    # settings travel as list elements after the constant script, never inside it
    assert args[4] == BUCKET and BUCKET not in args[2]
    assert ["--env", "FRUITS_S3_BUCKET", BUCKET] == args[args.index("FRUITS_S3_BUCKET") - 1 :][:3]
    assert ["--env", "FRUITS_DEPLOYMENT", "emr"] == args[args.index("FRUITS_DEPLOYMENT") - 1 :][:3]
    _, livy = plan(dict(with_password, FRUITS_EMR_LIVY="1"))
    assert {a["Name"] for a in livy["RunJobFlow"]["Applications"]} == {"Hadoop", "Spark", "JupyterHub", "Livy"}
    # notebooks persist in the project bucket (EMR's jupyter-s3-conf classification)
    [persist] = [c for c in out["RunJobFlow"]["Configurations"] if c["Classification"] == "jupyter-s3-conf"]
    assert persist["Properties"] == {"s3.persistence.enabled": "true", "s3.persistence.bucket": BUCKET}
    text = cli(["emr", "plan"], with_password)
    assert text.returncode == 0, text.stderr
    for shown in (proc, text):  # the secret is in neither plan
        assert PASSWORD not in shown.stdout + shown.stderr


def test_cost_without_spot_is_labelled_on_demand(tmp_path, aws):
    _, out = plan(env_for(tmp_path, aws))
    cost = out["estimated_cost"]
    assert {f["market"] for f in cost["at_max_scale_without_spot"]["fleets"]} == {"on-demand"}
    assert {f["fleet"]: f["market"] for f in cost["at_max_scale"]["fleets"]}["task-spot"] == "spot (assumed)"


def test_s3_init_versions_the_bucket_and_expires_noncurrent_versions(tmp_path, aws):
    proc = cli(["s3", "init"], env_for(tmp_path, aws, FRUITS_S3_BUCKET=INIT_BUCKET))
    assert proc.returncode == 0, proc.stderr
    assert "versioning enabled" in proc.stdout
    s3 = aws.client("s3")  # plain http: the TLS-only policy still lets moto read configuration back
    assert s3.get_bucket_versioning(Bucket=INIT_BUCKET)["Status"] == "Enabled"
    rules = {r["ID"]: r for r in s3.get_bucket_lifecycle_configuration(Bucket=INIT_BUCKET)["Rules"]}
    assert rules["expire-step-launcher-staging"]["Filter"]["Prefix"] == "emr_staging/"
    noncurrent = rules["expire-noncurrent-versions"]
    assert noncurrent["Status"] == "Enabled" and noncurrent["Filter"].get("Prefix", "") == ""
    assert noncurrent["NoncurrentVersionExpiration"]["NoncurrentDays"] == 30


def test_emr_policy_is_rendered_from_settings(tmp_path, aws):
    region = "eu-central-1"
    proc = cli(
        ["emr", "policy"],
        env_for(tmp_path, aws, FRUITS_AWS_REGION=region, FRUITS_EMR_KMS_KEY_ARN=KMS_KEY.replace(REGION, region)),
    )
    assert proc.returncode == 0, proc.stderr
    assert "eu-west-3" not in proc.stdout and "${" not in proc.stdout
    statements = json.loads(proc.stdout)["Statement"]
    assert any(s["Resource"] == f"arn:aws:s3:::{BUCKET}" for s in statements)
    assert any(s["Resource"] == f"arn:aws:s3:::{BUCKET}/*" for s in statements)
    by_action = {}
    for s in statements:
        assert s["Effect"] == "Allow"
        for action in [s["Action"]] if isinstance(s["Action"], str) else s["Action"]:
            by_action[action] = s
    run = by_action["elasticmapreduce:RunJobFlow"]["Condition"]["StringEquals"]
    assert run["aws:RequestTag/project"] == "fruits-assets" and run["aws:RequestedRegion"] == region
    for action in ("DescribeCluster", "TerminateJobFlows", "AddJobFlowSteps", "DescribeStep"):
        s = by_action[f"elasticmapreduce:{action}"]
        assert s["Condition"]["StringEquals"]["aws:ResourceTag/project"] == "fruits-assets"
        assert s["Resource"].startswith(f"arn:aws:elasticmapreduce:{region}:")
    for action in ("CreateSecurityConfiguration", "DescribeSecurityConfiguration"):
        condition = by_action[f"elasticmapreduce:{action}"]["Condition"]["StringEquals"]
        assert condition["aws:RequestedRegion"] == region
    # every EMR action is scoped: by tag, or (actions that take no cluster) by region
    for action, s in by_action.items():
        if action.startswith("elasticmapreduce:"):
            assert s.get("Condition"), action
    passed = {
        s["Resource"].rsplit("/", 1)[1]: s["Condition"]["StringEquals"]["iam:PassedToService"]
        for s in statements
        if s["Action"] == "iam:PassRole"
    }
    # the project's own roles (emr/roles.py), never EMR's defaults
    assert passed == {
        "fruits-assets-emr-service": "elasticmapreduce.amazonaws.com",
        "fruits-assets-emr-instance": "ec2.amazonaws.com",
    }


def test_emr_up_creates_the_security_configuration_and_sends_it(tmp_path, aws, monkeypatch):
    from fruits_assets.emr.cluster import create_cluster
    from fruits_assets.emr.spec import ClusterSpec

    env = env_for(tmp_path, aws)
    _, out = plan(env)
    name, document = out["SecurityConfiguration"]["Name"], out["SecurityConfiguration"]["SecurityConfiguration"]
    # the real CLI, on moto
    up = cli(["emr", "up", "--poll-seconds", "0.2"], env)
    assert up.returncode == 0, up.stderr
    emr = aws.client("emr")
    created = emr.describe_security_configuration(Name=name)
    assert json.loads(created["SecurityConfiguration"]) == document
    cluster = emr.describe_cluster(ClusterId=up.stdout.strip())["Cluster"]
    assert cluster["SecurityConfiguration"] == name and cluster["VisibleToAllUsers"] is False
    emr.terminate_job_flows(JobFlowIds=[up.stdout.strip()])
    # again in process, recording what RunJobFlow sent: the existing configuration is reused
    for key in ("FRUITS_S3_BUCKET", "FRUITS_AWS_REGION", "FRUITS_EMR_KMS_KEY_ARN", "FRUITS_EMR_SUBNET_IDS"):
        monkeypatch.setenv(key, env[key])
    sent = []
    emr.meta.events.register("provide-client-params.emr.RunJobFlow", lambda params, **_: sent.append(params))
    cluster_id = create_cluster(
        emr, aws.client("s3"), ClusterSpec.from_env(), poll_s=0.2, timeout_s=60, ec2_client=aws.client("ec2")
    )
    [request] = sent
    assert request["SecurityConfiguration"] == name and request["VisibleToAllUsers"] is False
    assert {a["Name"] for a in request["Applications"]} == {"Hadoop", "Spark"}
    emr.terminate_job_flows(JobFlowIds=[cluster_id])


def test_emr_up_with_jupyterhub_keeps_the_password_out_of_the_request(aws, monkeypatch, tmp_path):
    from fruits_assets.emr.cluster import cluster_state, create_cluster
    from fruits_assets.emr.spec import JUPYTERHUB_SECRET_KEY, PROJECT_ZIP, ClusterSpec

    for key, value in (
        ("FRUITS_S3_BUCKET", BUCKET),
        ("FRUITS_AWS_REGION", REGION),
        ("FRUITS_EMR_KMS_KEY_ARN", KMS_KEY),
        ("FRUITS_EMR_JUPYTERHUB", "1"),
        ("FRUITS_EMR_JUPYTERHUB_PASSWORD", PASSWORD),
        ("FRUITS_EMR_SUBNET_IDS", aws.subnet),
    ):
        monkeypatch.setenv(key, value)
    spec = ClusterSpec.from_env()
    assert PASSWORD not in repr(spec)
    sent = []
    emr = aws.client("emr")
    emr.meta.events.register("provide-client-params.emr.RunJobFlow", lambda params, **_: sent.append(params))
    cluster_id = create_cluster(emr, aws.client("s3"), spec, wait=False, ec2_client=aws.client("ec2"))
    [request] = sent
    assert PASSWORD not in json.dumps(request)
    assert request["Steps"][0]["Name"] == "jupyterhub-admin-password"
    assert request["Steps"][0]["HadoopJarStep"]["Args"][-2:] == [BUCKET, JUPYTERHUB_SECRET_KEY]
    staged = aws.client("s3").get_object(Bucket=BUCKET, Key=JUPYTERHUB_SECRET_KEY)["Body"].read()
    assert staged == f"jovyan:{PASSWORD}\n".encode()
    # `emr status` shows the set-up steps, so a failed kernel install does not go unnoticed
    assert {st["name"] for st in cluster_state(emr, cluster_id)["setup_steps"]} == {
        "jupyterhub-admin-password",
        "jupyterhub-project-kernel",
    }
    emr.terminate_job_flows(JobFlowIds=[cluster_id])
    # the package the hub's kernel imports from a zip: the catalog loads without Dagster or Spark
    zipped = tmp_path / PROJECT_ZIP
    zipped.write_bytes(aws.client("s3").get_object(Bucket=BUCKET, Key=f"emr/bootstrap/{PROJECT_ZIP}")["Body"].read())
    code = (
        "import sys, fruits_assets.storage.catalog as c; "
        "print(c.__file__, sorted(m for m in ('dagster', 'pyspark', 'tensorflow') if m in sys.modules))"
    )
    probe = subprocess.run(
        [sys.executable, "-c", code],
        env=dict(os.environ, PYTHONPATH=str(zipped)),
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert probe.returncode == 0, probe.stderr
    assert probe.stdout.split() == [f"{zipped}/fruits_assets/storage/catalog.py", "[]"]


def test_emr_notebook_puts_the_notebook_where_the_hub_lists_it(tmp_path, aws):
    proc = cli(["emr", "notebook", str(REPO / "notebooks" / "explore.ipynb")], env_for(tmp_path, aws))
    assert proc.returncode == 0, proc.stderr
    key = "jupyter/jovyan/explore.ipynb"
    assert proc.stdout.startswith(f"s3://{BUCKET}/{key}")
    stored = aws.client("s3").get_object(Bucket=BUCKET, Key=key)
    assert stored["Body"].read() == (REPO / "notebooks" / "explore.ipynb").read_bytes()
    assert stored["ServerSideEncryption"] == "AES256"
    one_line_error(cli(["emr", "notebook", str(tmp_path / "missing.ipynb")], env_for(tmp_path, aws)), "no notebook at")
    # a copy edited in the hub is not overwritten unless asked
    aws.client("s3").put_object(Bucket=BUCKET, Key=key, Body=b"edited in the hub")
    one_line_error(
        cli(["emr", "notebook", str(REPO / "notebooks" / "explore.ipynb")], env_for(tmp_path, aws)), "pass --force"
    )
    assert aws.client("s3").get_object(Bucket=BUCKET, Key=key)["Body"].read() == b"edited in the hub"
    forced = cli(["emr", "notebook", "--force", str(REPO / "notebooks" / "explore.ipynb")], env_for(tmp_path, aws))
    assert forced.returncode == 0, forced.stderr
    assert aws.client("s3").get_object(Bucket=BUCKET, Key=key)["Body"].read() != b"edited in the hub"
