"""The EMR cluster: a complete RunJobFlow request built from settings, its cost, and its lifecycle."""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from .. import settings

RELEASE = "emr-7.10.0"  # EMR 7.x: Spark 3.5, Amazon Linux 2023
VENV_PYTHON = "/opt/fruits/venv/bin/python"
BOOTSTRAP_PREFIX = "emr/bootstrap"
LOG_PREFIX = "emr/logs"
ON_DEMAND_TYPES = ("m5.xlarge", "m6i.xlarge", "m5a.xlarge")
SPOT_TYPES = ("m5.xlarge", "m5a.xlarge", "m6i.xlarge", "m6a.xlarge", "m7i.xlarge")


def _int_env(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    try:
        return int(raw) if raw else default
    except ValueError:
        raise settings.SettingsError(f"{name}={raw!r} is not an integer") from None


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
    tags: dict[str, str] = field(default_factory=lambda: {"project": "fruits-assets", "managed-by": "fruits-assets-cli"})

    @classmethod
    def from_env(cls, allow_non_eu: bool | None = None) -> "ClusterSpec":
        spec = cls(
            bucket=settings.require("FRUITS_S3_BUCKET"),
            region=settings.aws_region(allow_non_eu),
            release=os.environ.get("FRUITS_EMR_RELEASE", RELEASE),
            core_units=_int_env("FRUITS_EMR_CORE_UNITS", 2),
            task_spot_units=_int_env("FRUITS_EMR_TASK_SPOT_UNITS", 2),
            min_units=_int_env("FRUITS_EMR_MIN_UNITS", 2),
            max_units=_int_env("FRUITS_EMR_MAX_UNITS", 20),
            idle_timeout_s=_int_env("FRUITS_EMR_IDLE_TIMEOUT_S", 3600),
            subnet_ids=tuple(s for s in os.environ.get("FRUITS_EMR_SUBNET_IDS", "").split(",") if s),
            key_name=os.environ.get("FRUITS_EMR_KEY_NAME") or None,
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


def _fleet(name: str, kind: str, types: tuple[str, ...], on_demand: int = 0, spot: int = 0,
           spot_timeout_min: int = 10) -> dict:
    fleet: dict[str, Any] = {
        "Name": name, "InstanceFleetType": kind,
        "TargetOnDemandCapacity": on_demand, "TargetSpotCapacity": spot,
        "InstanceTypeConfigs": [{"InstanceType": t, "WeightedCapacity": 1} for t in types],
    }
    if spot:
        fleet["LaunchSpecifications"] = {"SpotSpecification": {
            "TimeoutDurationMinutes": spot_timeout_min, "TimeoutAction": "SWITCH_TO_ON_DEMAND",
            "AllocationStrategy": "capacity-optimized"}}
    return fleet


def run_job_flow_request(spec: ClusterSpec) -> dict:
    """The complete RunJobFlow request: nothing is sent to AWS here."""
    instances: dict[str, Any] = {
        "InstanceFleets": [
            _fleet("master", "MASTER", ON_DEMAND_TYPES, on_demand=1),
            _fleet("core", "CORE", ON_DEMAND_TYPES, on_demand=spec.core_units),
            # Spot only where losing a node costs a retried task, never HDFS blocks or the driver.
            _fleet("task-spot", "TASK", SPOT_TYPES, spot=spec.task_spot_units,
                   spot_timeout_min=spec.spot_timeout_min),
        ],
        "KeepJobFlowAliveWhenNoSteps": True,
        "TerminationProtected": False,
    }
    if spec.subnet_ids:
        instances["Ec2SubnetIds"] = list(spec.subnet_ids)
    if spec.key_name:
        instances["Ec2KeyName"] = spec.key_name
    fruits_env = {"PYSPARK_PYTHON": VENV_PYTHON, "PYSPARK_DRIVER_PYTHON": VENV_PYTHON,
                  "FRUITS_DEPLOYMENT": "emr", "FRUITS_S3_BUCKET": spec.bucket, "FRUITS_AWS_REGION": spec.region}
    if spec.region not in settings.EU_REGIONS:
        fruits_env["FRUITS_ALLOW_NON_EU_REGION"] = "1"
    return {
        "Name": spec.name,
        "ReleaseLabel": spec.release,
        "Applications": [{"Name": n} for n in ("Hadoop", "Spark", "JupyterHub", "Livy")],
        "LogUri": f"s3://{spec.bucket}/{LOG_PREFIX}/",
        "Instances": instances,
        "BootstrapActions": [{
            "Name": "python-3.11-and-wheels",
            "ScriptBootstrapAction": {"Path": spec.bootstrap_uri, "Args": [spec.requirements_uri]},
        }],
        "Configurations": [
            {"Classification": "spark-env", "Properties": {},
             "Configurations": [{"Classification": "export", "Properties": fruits_env}]},
            {"Classification": "spark-defaults", "Properties": {
                "spark.pyspark.python": VENV_PYTHON,
                "spark.sql.execution.arrow.pyspark.enabled": "true",
                "spark.sql.execution.arrow.maxRecordsPerBatch": str(spec.arrow_batch_rows),
                "spark.dynamicAllocation.enabled": "true",
                "spark.python.worker.reuse": "true",
            }},
        ],
        "ManagedScalingPolicy": {"ComputeLimits": {
            "UnitType": "InstanceFleetUnits",
            "MinimumCapacityUnits": spec.min_units,
            "MaximumCapacityUnits": spec.max_units,
            # Growth beyond the on-demand core goes to Spot task nodes.
            "MaximumOnDemandCapacityUnits": spec.core_units,
            "MaximumCoreCapacityUnits": spec.core_units,
        }},
        "AutoTerminationPolicy": {"IdleTimeout": spec.idle_timeout_s},
        "ServiceRole": spec.service_role,
        "JobFlowRole": spec.instance_profile,
        "VisibleToAllUsers": True,
        "StepConcurrencyLevel": 1,
        "Tags": [{"Key": k, "Value": v} for k, v in spec.tags.items()],
    }


def price_table() -> dict:
    return json.loads(resources.files(__package__).joinpath("prices.json").read_text())


def hourly_cost(request: dict, prices: dict | None = None, units: dict[str, int] | None = None) -> dict:
    """Estimated USD/hour, EC2 + EMR surcharge, for the first instance type of each fleet;
    ``units`` overrides a fleet's size (e.g. the task fleet at the scaling maximum)."""
    prices = prices or price_table()
    total, lines = 0.0, []
    for fleet in request["Instances"]["InstanceFleets"]:
        itype = fleet["InstanceTypeConfigs"][0]["InstanceType"]
        p = prices["instances"][itype]
        spot = bool(fleet.get("TargetSpotCapacity"))
        n = (units or {}).get(fleet["Name"], fleet["TargetOnDemandCapacity"] + fleet["TargetSpotCapacity"])
        ec2 = p["ec2"] * (prices["spot_fraction"] if spot else 1.0)
        cost = n * (ec2 + p["emr"])
        total += cost
        lines.append({"fleet": fleet["Name"], "instances": n, "type": itype,
                      "market": "spot (assumed)" if spot else "on-demand", "usd_per_hour": round(cost, 3)})
    return {"usd_per_hour": round(total, 3), "fleets": lines, "price_table": prices["_about"]}


def cost_summary(request: dict, spec: ClusterSpec) -> dict:
    at_start = hourly_cost(request)
    at_max = hourly_cost(request, units={"task-spot": spec.max_units - spec.core_units})
    all_on_demand = dict(price_table(), spot_fraction=1.0)
    return {"at_start": at_start, "at_max_scale": at_max,
            "at_max_scale_without_spot": hourly_cost(request, all_on_demand,
                                                      units={"task-spot": spec.max_units - spec.core_units})}


def stage_bootstrap(s3_client, spec: ClusterSpec) -> None:
    """Upload the bootstrap script and the wheel list the plan points at."""
    pkg = resources.files(__package__)
    for name in ("bootstrap.sh", "requirements-emr.txt"):
        s3_client.put_object(Bucket=spec.bucket, Key=f"{BOOTSTRAP_PREFIX}/{name}",
                             Body=pkg.joinpath(name).read_bytes())


def create_cluster(emr_client, s3_client, spec: ClusterSpec, wait: bool = True, poll_s: float = 30,
                   timeout_s: float = 3600) -> str:
    """Stage the bootstrap, RunJobFlow, and (optionally) wait until the cluster is WAITING."""
    stage_bootstrap(s3_client, spec)
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
    return {"id": cluster_id, "name": cluster.get("Name"), "state": status["State"],
            "reason": status.get("StateChangeReason", {}).get("Message", ""),
            "release": cluster.get("ReleaseLabel"), "master_dns": cluster.get("MasterPublicDnsName")}


def terminate_cluster(emr_client, cluster_id: str) -> None:
    emr_client.terminate_job_flows(JobFlowIds=[cluster_id])
