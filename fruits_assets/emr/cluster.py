"""The EMR cluster: a complete RunJobFlow request built from settings, its security configuration,
its cost, its lifecycle, and the IAM policy the operator who runs it needs."""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from .. import settings

RELEASE = "emr-7.10.0"  # EMR 7.x: Spark 3.5, Amazon Linux 2023
VENV_PYTHON = "/opt/fruits/venv/bin/python"
BOOTSTRAP_PREFIX = "emr/bootstrap"
LOG_PREFIX = "emr/logs"
# JupyterHub notebooks persisted by EMR's jupyter-s3-conf classification: s3://<bucket>/jupyter/<user>/
JUPYTER_PREFIX = "jupyter"
PROJECT_ZIP = "fruits_assets.zip"  # the package, importable from a zip (catalog needs no Dagster/Spark)
# What the catalog and the notebook import in the hub's container (no TensorFlow, no Dagster).
NOTEBOOK_PACKAGES = ("pandas<3", "pyarrow", "boto3", "numpy", "matplotlib", "pillow", "ipykernel")
ON_DEMAND_TYPES = ("m5.xlarge", "m6i.xlarge", "m5a.xlarge")
SPOT_TYPES = ("m5.xlarge", "m5a.xlarge", "m6i.xlarge", "m6a.xlarge", "m7i.xlarge")
PROJECT_TAG = ("project", "fruits-assets")  # the IAM policy below scopes every cluster action to it
# Shown in `emr plan` where FRUITS_EMR_KMS_KEY_ARN is unset; `emr up` refuses to send it.
KMS_KEY_PLACEHOLDER = "<set FRUITS_EMR_KMS_KEY_ARN>"
JUPYTERHUB_ADMIN = "jovyan"
JUPYTERHUB_SECRET_KEY = "emr/secrets/jupyterhub-admin"


@dataclass(frozen=True)
class ClusterSpec:
    """What the cluster looks like; every field has an env var (README, "Run on AWS EMR")."""

    bucket: str
    region: str
    release: str = RELEASE
    name: str = "fruits-assets"
    core_units: int = 2
    task_spot_units: int = 2
    min_units: int = 2
    max_units: int = 20
    idle_timeout_s: int = 3600
    spot_timeout_min: int = 10
    subnet_ids: tuple[str, ...] = ()
    key_name: str | None = None
    service_role: str = "EMR_DefaultRole"
    instance_profile: str = "EMR_EC2_DefaultRole"
    arrow_batch_rows: int = 256
    tags: dict[str, str] = field(
        default_factory=lambda: {PROJECT_TAG[0]: PROJECT_TAG[1], "managed-by": "fruits-assets-cli"}
    )
    kms_key_arn: str | None = None  # local-disk + EBS encryption key; None: plan only
    tls_certs_s3: str | None = None  # PEM zip; set: in-transit encryption on
    jupyterhub: bool = False  # JupyterHub + Livy: an admin web login, so off unless asked for
    jupyterhub_password: str | None = field(default=None, repr=False)  # never in reprs or the plan

    @classmethod
    def from_env(cls, allow_non_eu: bool | None = None) -> "ClusterSpec":
        region = settings.aws_region(allow_non_eu)
        jupyterhub = settings.emr_jupyterhub()
        spec = cls(
            bucket=settings.require("FRUITS_S3_BUCKET"),
            region=region,
            release=settings.value("FRUITS_EMR_RELEASE", RELEASE) or RELEASE,
            core_units=settings.integer("FRUITS_EMR_CORE_UNITS", 2),
            task_spot_units=settings.integer("FRUITS_EMR_TASK_SPOT_UNITS", 2),
            min_units=settings.integer("FRUITS_EMR_MIN_UNITS", 2),
            max_units=settings.integer("FRUITS_EMR_MAX_UNITS", 20),
            idle_timeout_s=settings.integer("FRUITS_EMR_IDLE_TIMEOUT_S", 3600),
            subnet_ids=tuple(s for s in (settings.value("FRUITS_EMR_SUBNET_IDS") or "").split(",") if s),
            key_name=settings.value("FRUITS_EMR_KEY_NAME"),
            kms_key_arn=settings.emr_kms_key_arn(region),
            tls_certs_s3=settings.emr_tls_certs_s3(),
            jupyterhub=jupyterhub,
            jupyterhub_password=settings.emr_jupyterhub_password() if jupyterhub else None,
        )
        if not spec.release.startswith("emr-7."):
            raise settings.SettingsError(f"FRUITS_EMR_RELEASE={spec.release} is not an EMR 7.x release")
        if not 1 <= spec.min_units <= spec.max_units:
            raise settings.SettingsError("FRUITS_EMR_MIN_UNITS must be >= 1 and <= FRUITS_EMR_MAX_UNITS")
        if spec.min_units < spec.core_units:
            raise settings.SettingsError("FRUITS_EMR_MIN_UNITS must be >= FRUITS_EMR_CORE_UNITS")
        return spec

    @property
    def bootstrap_uri(self) -> str:
        return f"s3://{self.bucket}/{BOOTSTRAP_PREFIX}/bootstrap.sh"

    @property
    def requirements_uri(self) -> str:
        return f"s3://{self.bucket}/{BOOTSTRAP_PREFIX}/requirements-emr.txt"

    @property
    def applications(self) -> list[str]:
        # Livy only serves JupyterHub's notebooks here; the step launcher needs neither.
        return ["Hadoop", "Spark", *(["JupyterHub", "Livy"] if self.jupyterhub else [])]


def security_configuration(spec: ClusterSpec) -> dict:
    """The EMR security configuration document (`aws emr create-security-configuration`):
    - at rest: EMRFS writes to S3 with SSE-S3; local disks (LUKS) and EBS volumes with the KMS key
      FRUITS_EMR_KMS_KEY_ARN (EMR offers no key-less local-disk encryption);
    - in transit (optional, FRUITS_EMR_TLS_CERTS_S3): TLS between the nodes' Spark/Hadoop services,
      with the PEM certificates zipped in S3 (see settings.emr_tls_certs_s3 for what the zip holds);
    - IMDSv2 only, so a request forged through an application cannot read the instance role's
      credentials; hop limit 2 lets processes in containers (JupyterHub's) still reach it."""
    encryption: dict[str, Any] = {
        "EnableAtRestEncryption": True,
        "EnableInTransitEncryption": bool(spec.tls_certs_s3),
        "AtRestEncryptionConfiguration": {
            "S3EncryptionConfiguration": {"EncryptionMode": "SSE-S3"},
            "LocalDiskEncryptionConfiguration": {
                "EncryptionKeyProviderType": "AwsKms",
                "AwsKmsKey": spec.kms_key_arn or KMS_KEY_PLACEHOLDER,
                "EnableEbsEncryption": True,
            },
        },
    }
    if spec.tls_certs_s3:
        encryption["InTransitEncryptionConfiguration"] = {
            "TLSCertificateConfiguration": {"CertificateProviderType": "PEM", "S3Object": spec.tls_certs_s3}
        }
    return {
        "EncryptionConfiguration": encryption,
        "InstanceMetadataServiceConfiguration": {
            "MinimumInstanceMetadataServiceVersion": 2,
            "HttpPutResponseHopLimit": 2,
        },
    }


def security_configuration_name(spec: ClusterSpec) -> str:
    """Named by a hash of its content: a security configuration cannot be edited, so a changed
    setting gives a new name, and one that already exists under this name is this very document."""
    doc = json.dumps(security_configuration(spec), sort_keys=True).encode()
    return f"{spec.name}-{hashlib.sha256(doc).hexdigest()[:12]}"


def jupyterhub_password_step(spec: ClusterSpec) -> dict:
    """The first step when JupyterHub is on: EMR's documented way to change the admin password
    (chpasswd in the jupyterhub container). The password is not in the request, where DescribeStep
    and the console would show it: `emr up` stages it as an S3 object (private, encrypted, TLS
    only) and this step pipes it to chpasswd, then deletes that object version for good. A
    cluster whose password could not be set is terminated rather than left on the default."""
    b, k = spec.bucket, JUPYTERHUB_SECRET_KEY
    script = (
        "set -euo pipefail; "
        f"v=$(aws s3api head-object --bucket {b} --key {k} --query \"VersionId || 'null'\" --output text); "
        f"aws s3 cp s3://{b}/{k} - | sudo docker exec -i jupyterhub chpasswd; "
        f'aws s3api delete-object --bucket {b} --key {k} --version-id "$v"'
    )
    return {
        "Name": "jupyterhub-admin-password",
        "ActionOnFailure": "TERMINATE_CLUSTER",
        "HadoopJarStep": {"Jar": "command-runner.jar", "Args": ["bash", "-c", script]},
    }


def jupyterhub_kernel_step(spec: ClusterSpec) -> dict:
    """When JupyterHub is on: the project kernel in the hub's container ("Python 3 (fruits-assets)"),
    with the package zip `emr up` staged on its PYTHONPATH and the deployment's settings in the
    kernel's environment, so notebooks/explore.ipynb runs there unchanged. A failure leaves the
    cluster up (its Spark steps do not need the hub)."""
    b = spec.bucket
    env = {
        "PYTHONPATH": f"/opt/{PROJECT_ZIP}",
        "FRUITS_DEPLOYMENT": "emr",
        "FRUITS_S3_BUCKET": b,
        "FRUITS_AWS_REGION": spec.region,
    }
    if spec.region not in settings.EU_REGIONS:
        env["FRUITS_ALLOW_NON_EU_REGION"] = "1"
    packages = " ".join(f"'{p}'" for p in NOTEBOOK_PACKAGES)
    script = (
        "set -euo pipefail; "
        f"aws s3 cp s3://{b}/{BOOTSTRAP_PREFIX}/{PROJECT_ZIP} /tmp/{PROJECT_ZIP}; "
        f"sudo docker cp /tmp/{PROJECT_ZIP} jupyterhub:/opt/{PROJECT_ZIP}; "
        # the package needs Python >= 3.10: fail this step with that reason, not later in a notebook
        "sudo docker exec jupyterhub python3 -c 'import sys; assert sys.version_info >= (3, 10), "
        '"the hub container has Python %s; fruits_assets needs >= 3.10" % sys.version\'; '
        f"sudo docker exec jupyterhub python3 -m pip install --quiet {packages}; "
        "sudo docker exec jupyterhub python3 -m ipykernel install --name fruits-assets "
        "--display-name 'Python 3 (fruits-assets)' " + " ".join(f"--env {k} {v}" for k, v in env.items())
    )
    return {
        "Name": "jupyterhub-project-kernel",
        "ActionOnFailure": "CONTINUE",
        "HadoopJarStep": {"Jar": "command-runner.jar", "Args": ["bash", "-c", script]},
    }


def project_zip() -> bytes:
    """The fruits_assets package as a zip (sources only), for the hub's kernel PYTHONPATH."""
    import io
    import zipfile
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(root.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                zf.write(path, f"fruits_assets/{path.relative_to(root).as_posix()}")
    return buf.getvalue()


def push_notebook(
    s3_client,
    spec: ClusterSpec,
    notebook: bytes,
    name: str = "explore.ipynb",
    user: str = JUPYTERHUB_ADMIN,
    force: bool = False,
) -> str:
    """Put a notebook where the hub's S3 persistence (jupyter-s3-conf) lists ``user``'s notebooks;
    a copy already there (maybe edited in the hub) is replaced only with ``force``."""
    key = f"{JUPYTER_PREFIX}/{user}/{name}"
    if not force:
        try:
            s3_client.head_object(Bucket=spec.bucket, Key=key)
        except s3_client.exceptions.ClientError as exc:
            if exc.response.get("Error", {}).get("Code") not in ("404", "NoSuchKey", "NotFound"):
                raise
        else:
            raise settings.SettingsError(
                f"s3://{spec.bucket}/{key} exists (maybe edited in JupyterHub): "
                "pass --force to replace it (the bucket keeps the old version)"
            )
    s3_client.put_object(Bucket=spec.bucket, Key=key, Body=notebook, ServerSideEncryption="AES256")
    return f"s3://{spec.bucket}/{key}"


def _fleet(
    name: str, kind: str, types: tuple[str, ...], on_demand: int = 0, spot: int = 0, spot_timeout_min: int = 10
) -> dict:
    fleet: dict[str, Any] = {
        "Name": name,
        "InstanceFleetType": kind,
        "TargetOnDemandCapacity": on_demand,
        "TargetSpotCapacity": spot,
        "InstanceTypeConfigs": [{"InstanceType": t, "WeightedCapacity": 1} for t in types],
    }
    if spot:
        fleet["LaunchSpecifications"] = {
            "SpotSpecification": {
                "TimeoutDurationMinutes": spot_timeout_min,
                "TimeoutAction": "SWITCH_TO_ON_DEMAND",
                "AllocationStrategy": "capacity-optimized",
            }
        }
    return fleet


def run_job_flow_request(spec: ClusterSpec) -> dict:
    """The complete RunJobFlow request: nothing is sent to AWS here."""
    instances: dict[str, Any] = {
        "InstanceFleets": [
            _fleet("master", "MASTER", ON_DEMAND_TYPES, on_demand=1),
            _fleet("core", "CORE", ON_DEMAND_TYPES, on_demand=spec.core_units),
            # Spot only where losing a node costs a retried task, never HDFS blocks or the driver.
            _fleet("task-spot", "TASK", SPOT_TYPES, spot=spec.task_spot_units, spot_timeout_min=spec.spot_timeout_min),
        ],
        "KeepJobFlowAliveWhenNoSteps": True,
        "TerminationProtected": False,
    }
    if spec.subnet_ids:
        instances["Ec2SubnetIds"] = list(spec.subnet_ids)
    if spec.key_name:
        instances["Ec2KeyName"] = spec.key_name
    fruits_env = {
        "PYSPARK_PYTHON": VENV_PYTHON,
        "PYSPARK_DRIVER_PYTHON": VENV_PYTHON,
        "FRUITS_DEPLOYMENT": "emr",
        "FRUITS_S3_BUCKET": spec.bucket,
        "FRUITS_AWS_REGION": spec.region,
    }
    if spec.region not in settings.EU_REGIONS:
        fruits_env["FRUITS_ALLOW_NON_EU_REGION"] = "1"
    request: dict[str, Any] = {
        "Name": spec.name,
        "ReleaseLabel": spec.release,
        "Applications": [{"Name": n} for n in spec.applications],
        "LogUri": f"s3://{spec.bucket}/{LOG_PREFIX}/",
        "Instances": instances,
        "BootstrapActions": [
            {
                "Name": "python-3.11-and-wheels",
                "ScriptBootstrapAction": {"Path": spec.bootstrap_uri, "Args": [spec.requirements_uri]},
            }
        ],
        "Configurations": [
            {
                "Classification": "spark-env",
                "Properties": {},
                "Configurations": [{"Classification": "export", "Properties": fruits_env}],
            },
            {
                "Classification": "spark-defaults",
                "Properties": {
                    "spark.pyspark.python": VENV_PYTHON,
                    "spark.sql.execution.arrow.pyspark.enabled": "true",
                    "spark.sql.execution.arrow.maxRecordsPerBatch": str(spec.arrow_batch_rows),
                    "spark.dynamicAllocation.enabled": "true",
                    "spark.python.worker.reuse": "true",
                },
            },
        ],
        "ManagedScalingPolicy": {
            "ComputeLimits": {
                "UnitType": "InstanceFleetUnits",
                "MinimumCapacityUnits": spec.min_units,
                "MaximumCapacityUnits": spec.max_units,
                # Growth beyond the on-demand core goes to Spot task nodes.
                "MaximumOnDemandCapacityUnits": spec.core_units,
                "MaximumCoreCapacityUnits": spec.core_units,
            }
        },
        "AutoTerminationPolicy": {"IdleTimeout": spec.idle_timeout_s},
        "SecurityConfiguration": security_configuration_name(spec),
        "ServiceRole": spec.service_role,
        "JobFlowRole": spec.instance_profile,
        # Only the principal that created the cluster (and the account root) may act on it, whatever
        # other principals' policies allow: run `emr up` as the identity the step launcher uses.
        "VisibleToAllUsers": False,
        "StepConcurrencyLevel": 1,
        "Tags": [{"Key": k, "Value": v} for k, v in spec.tags.items()],
    }
    if spec.jupyterhub:
        # Notebooks survive the cluster: the hub saves them under s3://<bucket>/jupyter/<user>/.
        request["Configurations"].append(
            {
                "Classification": "jupyter-s3-conf",
                "Properties": {"s3.persistence.enabled": "true", "s3.persistence.bucket": spec.bucket},
            }
        )
        request["Steps"] = [jupyterhub_password_step(spec), jupyterhub_kernel_step(spec)]
    return request


def price_table() -> dict:
    return json.loads(resources.files(__package__).joinpath("prices.json").read_text())


def hourly_cost(
    request: dict, prices: dict | None = None, units: dict[str, int] | None = None, on_demand_only: bool = False
) -> dict:
    """Estimated USD/hour, EC2 + EMR surcharge, for the first instance type of each fleet;
    ``units`` overrides a fleet's size (e.g. the task fleet at the scaling maximum);
    ``on_demand_only`` prices (and labels) every fleet on-demand, Spot ones included."""
    prices = prices or price_table()
    total, lines = 0.0, []
    for fleet in request["Instances"]["InstanceFleets"]:
        itype = fleet["InstanceTypeConfigs"][0]["InstanceType"]
        p = prices["instances"][itype]
        spot = bool(fleet.get("TargetSpotCapacity")) and not on_demand_only
        n = (units or {}).get(fleet["Name"], fleet["TargetOnDemandCapacity"] + fleet["TargetSpotCapacity"])
        ec2 = p["ec2"] * (prices["spot_fraction"] if spot else 1.0)
        cost = n * (ec2 + p["emr"])
        total += cost
        lines.append(
            {
                "fleet": fleet["Name"],
                "instances": n,
                "type": itype,
                "market": "spot (assumed)" if spot else "on-demand",
                "usd_per_hour": round(cost, 3),
            }
        )
    return {"usd_per_hour": round(total, 3), "fleets": lines, "price_table": prices["_about"]}


def cost_summary(request: dict, spec: ClusterSpec) -> dict:
    at_start = hourly_cost(request)
    at_max_units = {"task-spot": spec.max_units - spec.core_units}
    at_max = hourly_cost(request, units=at_max_units)
    return {
        "at_start": at_start,
        "at_max_scale": at_max,
        "at_max_scale_without_spot": hourly_cost(request, units=at_max_units, on_demand_only=True),
    }


def stage_bootstrap(s3_client, spec: ClusterSpec) -> None:
    """Upload the bootstrap script and the wheel list the plan points at."""
    pkg = resources.files(__package__)
    for name in ("bootstrap.sh", "requirements-emr.txt"):
        s3_client.put_object(Bucket=spec.bucket, Key=f"{BOOTSTRAP_PREFIX}/{name}", Body=pkg.joinpath(name).read_bytes())
    if spec.jupyterhub:  # read by jupyterhub_kernel_step
        s3_client.put_object(Bucket=spec.bucket, Key=f"{BOOTSTRAP_PREFIX}/{PROJECT_ZIP}", Body=project_zip())


def ensure_security_configuration(emr_client, spec: ClusterSpec) -> str:
    """Create the security configuration the request names, unless it exists (same name, same
    content: see security_configuration_name); returns its name."""
    name = security_configuration_name(spec)
    try:
        emr_client.create_security_configuration(
            Name=name, SecurityConfiguration=json.dumps(security_configuration(spec))
        )
    except emr_client.exceptions.InvalidRequestException as exc:
        # EMR's answer when the name is taken (moto drops its message): fine if it is there now.
        try:
            emr_client.describe_security_configuration(Name=name)
        except emr_client.exceptions.InvalidRequestException:
            raise exc from None
    return name


def create_cluster(
    emr_client, s3_client, spec: ClusterSpec, wait: bool = True, poll_s: float = 30, timeout_s: float = 3600
) -> str:
    """Create the security configuration, stage the bootstrap (and JupyterHub's admin password),
    RunJobFlow, and (optionally) wait until the cluster is WAITING."""
    if not spec.kms_key_arn:  # the plan's placeholder must never reach AWS
        raise settings.SettingsError(
            "FRUITS_EMR_KMS_KEY_ARN is not set (required by `emr up` for local-disk and EBS encryption)"
        )
    if spec.jupyterhub and not spec.jupyterhub_password:
        raise settings.SettingsError(
            "FRUITS_EMR_JUPYTERHUB_PASSWORD is not set (required when FRUITS_EMR_JUPYTERHUB=1)"
        )
    ensure_security_configuration(emr_client, spec)
    stage_bootstrap(s3_client, spec)
    if spec.jupyterhub:  # read and deleted by jupyterhub_password_step
        s3_client.put_object(
            Bucket=spec.bucket,
            Key=JUPYTERHUB_SECRET_KEY,
            ServerSideEncryption="AES256",
            Body=f"{JUPYTERHUB_ADMIN}:{spec.jupyterhub_password}\n".encode(),
        )
    cluster_id = emr_client.run_job_flow(**run_job_flow_request(spec))["JobFlowId"]
    if wait:
        deadline = time.time() + timeout_s
        while True:
            state = cluster_state(emr_client, cluster_id)["state"]
            if state == "WAITING":
                break
            if state.startswith("TERMINAT") or time.time() > deadline:
                raise RuntimeError(f"cluster {cluster_id} is {state}, not WAITING")
            time.sleep(poll_s)
    return cluster_id


def cluster_state(emr_client, cluster_id: str) -> dict:
    cluster = emr_client.describe_cluster(ClusterId=cluster_id)["Cluster"]
    status = cluster["Status"]
    # Set-up steps (JupyterHub's password and project kernel) report here: a failed one is visible.
    steps = [
        {"name": st["Name"], "state": st["Status"]["State"]}
        for st in emr_client.list_steps(ClusterId=cluster_id).get("Steps", [])
        if st["Name"].startswith("jupyterhub-")
    ]
    return {
        "id": cluster_id,
        "name": cluster.get("Name"),
        "state": status["State"],
        "reason": status.get("StateChangeReason", {}).get("Message", ""),
        "release": cluster.get("ReleaseLabel"),
        "master_dns": cluster.get("MasterPublicDnsName"),
        "setup_steps": steps,
    }


def terminate_cluster(emr_client, cluster_id: str) -> None:
    emr_client.terminate_job_flows(JobFlowIds=[cluster_id])


# What the step launcher and `emr up|status|down` call on an existing cluster: each names the cluster,
# so IAM can check its project tag.
CLUSTER_ACTIONS = (
    "DescribeCluster",
    "TerminateJobFlows",
    "AddJobFlowSteps",
    "DescribeStep",
    "ListSteps",
    "CancelSteps",
)


def operator_policy(spec: ClusterSpec) -> dict:
    """The IAM policy of whoever runs `s3 init`, `emr up|status|down` and the step launcher: the
    project bucket, clusters tagged project=fruits-assets in FRUITS_AWS_REGION, and the two default
    EMR roles, each passable only to the service it is meant for. No tagging actions: a principal
    that could retag a cluster could give itself access to it."""
    tag_key, tag_value = PROJECT_TAG
    bucket = f"arn:aws:s3:::{spec.bucket}"
    in_region = {"aws:RequestedRegion": spec.region}
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "OperatorManagesTheProjectBucket",
                "Effect": "Allow",
                "Action": [
                    "s3:CreateBucket",
                    "s3:PutBucketPolicy",
                    "s3:PutEncryptionConfiguration",
                    "s3:PutBucketPublicAccessBlock",
                    "s3:PutBucketVersioning",
                    "s3:PutLifecycleConfiguration",
                    "s3:PutBucketTagging",
                    "s3:GetBucketLocation",
                    "s3:ListBucket",
                ],
                "Resource": bucket,
            },
            {
                "Sid": "OperatorReadsAndWritesProjectObjects",
                "Effect": "Allow",
                "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
                "Resource": f"{bucket}/*",
            },
            {
                "Sid": "OperatorStartsOnlyProjectTaggedClusters",
                "Effect": "Allow",
                "Action": "elasticmapreduce:RunJobFlow",
                "Resource": "*",
                "Condition": {"StringEquals": {f"aws:RequestTag/{tag_key}": tag_value, **in_region}},
            },
            {
                "Sid": "OperatorActsOnlyOnProjectClusters",
                "Effect": "Allow",
                "Action": [f"elasticmapreduce:{a}" for a in CLUSTER_ACTIONS],
                "Resource": f"arn:aws:elasticmapreduce:{spec.region}:*:cluster/*",
                "Condition": {"StringEquals": {f"aws:ResourceTag/{tag_key}": tag_value}},
            },
            # These take no cluster, so no tag can scope them: region only.
            {
                "Sid": "OperatorListsClustersAndKeepsSecurityConfigurations",
                "Effect": "Allow",
                "Action": [
                    "elasticmapreduce:ListClusters",
                    "elasticmapreduce:CreateSecurityConfiguration",
                    "elasticmapreduce:DescribeSecurityConfiguration",
                ],
                "Resource": "*",
                "Condition": {"StringEquals": in_region},
            },
            {
                "Sid": "OperatorHandsTheServiceRoleToEmrOnly",
                "Effect": "Allow",
                "Action": "iam:PassRole",
                "Resource": f"arn:aws:iam::*:role/{spec.service_role}",
                "Condition": {"StringEquals": {"iam:PassedToService": "elasticmapreduce.amazonaws.com"}},
            },
            {
                "Sid": "OperatorHandsTheInstanceRoleToEc2Only",
                "Effect": "Allow",
                "Action": "iam:PassRole",
                "Resource": f"arn:aws:iam::*:role/{spec.instance_profile}",
                "Condition": {"StringEquals": {"iam:PassedToService": "ec2.amazonaws.com"}},
            },
        ],
    }
