"""The EMR cluster's request and lifecycle: a complete RunJobFlow request built from settings,
then create, state and terminate."""

from __future__ import annotations

import time
from importlib import resources
from typing import Any

from .. import settings
from .jupyterhub import jupyterhub_kernel_step, jupyterhub_password_step, project_zip
from .network import check_block_public_access, network_instances, resolve_network
from .security import ensure_security_configuration, security_configuration_name
from .spec import (
    BOOTSTRAP_PREFIX,
    JUPYTERHUB_ADMIN,
    JUPYTERHUB_SECRET_KEY,
    LOG_PREFIX,
    NODES_LOCK,
    NOTEBOOK_LOCK,
    ON_DEMAND_TYPES,
    PIP_LOCK,
    PROJECT_ZIP,
    SPOT_TYPES,
    VENV_PYTHON,
    ClusterSpec,
)


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
        # Never EMR's defaults: explicit subnets and security groups (emr/network.py).
        **network_instances(spec),
    }
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
                "ScriptBootstrapAction": {
                    "Path": spec.bootstrap_uri,
                    "Args": [spec.bootstrap_file_uri(PIP_LOCK), spec.bootstrap_file_uri(NODES_LOCK)],
                },
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
                    # The outputs are Delta tables: Spark SQL and notebooks on the cluster read
                    # them with spark.read.format("delta") (EMR 7 ships Delta, below).
                    "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
                    "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
                },
            },
            {"Classification": "delta-defaults", "Properties": {"delta.enabled": "true"}},
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


def stage_bootstrap(s3_client, spec: ClusterSpec) -> None:
    """Upload the bootstrap script and the hashed locks the plan points at."""
    pkg = resources.files(__package__)
    names = ["bootstrap.sh", PIP_LOCK, NODES_LOCK] + ([NOTEBOOK_LOCK] if spec.jupyterhub else [])
    for name in names:
        s3_client.put_object(Bucket=spec.bucket, Key=f"{BOOTSTRAP_PREFIX}/{name}", Body=pkg.joinpath(name).read_bytes())
    if spec.jupyterhub:  # read by jupyterhub_kernel_step
        s3_client.put_object(Bucket=spec.bucket, Key=f"{BOOTSTRAP_PREFIX}/{PROJECT_ZIP}", Body=project_zip())


def create_cluster(
    emr_client,
    s3_client,
    spec: ClusterSpec,
    wait: bool = True,
    poll_s: float = 30,
    timeout_s: float = 3600,
    *,
    ec2_client,
    report=None,
) -> str:
    """Check the account's block public access, settle the network (subnets, security groups),
    create the security configuration, stage the bootstrap (and JupyterHub's admin password),
    RunJobFlow, and (optionally) wait until the cluster is WAITING. ``report`` gets a line for each
    resource created on the way."""
    if not spec.kms_key_arn:  # the plan's placeholder must never reach AWS
        raise settings.SettingsError(
            "FRUITS_EMR_KMS_KEY_ARN is not set (required by `emr up` for local-disk and EBS encryption)"
        )
    if spec.jupyterhub and not spec.jupyterhub_password:
        raise settings.SettingsError(
            "FRUITS_EMR_JUPYTERHUB_PASSWORD is not set (required when FRUITS_EMR_JUPYTERHUB=1)"
        )
    check_block_public_access(emr_client, spec)
    spec, created = resolve_network(ec2_client, spec)
    for line in created:
        if report:
            report(line)
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
