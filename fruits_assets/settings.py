"""Deployment settings read from environment variables (documented in README)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

DEPLOYMENTS = ("local", "emr")
EU_REGIONS = (
    "eu-west-1", "eu-west-2", "eu-west-3", "eu-central-1", "eu-central-2",
    "eu-north-1", "eu-south-1", "eu-south-2",
)
DEFAULT_REGION = "eu-west-3"


class SettingsError(ValueError):
    """A setting is missing or invalid; the message names the variable."""


def _env(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name, "").strip()
    return value or default


def require(name: str) -> str:
    """Return env var ``name`` or raise a one-line error naming it."""
    value = _env(name)
    if value is None:
        raise SettingsError(f"{name} is not set (required for FRUITS_DEPLOYMENT={deployment()})")
    return value


def deployment() -> str:
    """The deployment picked by FRUITS_DEPLOYMENT (default ``local``)."""
    value = _env("FRUITS_DEPLOYMENT", "local")
    if value not in DEPLOYMENTS:
        raise SettingsError(f"FRUITS_DEPLOYMENT={value!r} is not one of {', '.join(DEPLOYMENTS)}")
    return value


def data_root() -> str:
    """Absolute local folder holding outputs of the local deployment (FRUITS_DATA_ROOT, default data/)."""
    return str(Path(_env("FRUITS_DATA_ROOT", "data")).expanduser().resolve())


def images_dir() -> str:
    """Local image folder (FRUITS_IMAGES_DIR, default <data root>/sample_images)."""
    default = str(Path(data_root()) / "sample_images")
    return str(Path(_env("FRUITS_IMAGES_DIR", default)).expanduser().resolve())


def weights() -> str:
    """FRUITS_WEIGHTS: imagenet | random | auto | a local path | an s3:// URI (default auto)."""
    return _env("FRUITS_WEIGHTS", "auto")


def spark_master() -> str:
    return _env("FRUITS_SPARK_MASTER", "local[*]")


def aws_region(allow_non_eu: bool | None = None) -> str:
    """AWS region (FRUITS_AWS_REGION, default eu-west-3); non-EU refused unless explicitly allowed."""
    region = _env("FRUITS_AWS_REGION", DEFAULT_REGION)
    if allow_non_eu is None:
        allow_non_eu = _env("FRUITS_ALLOW_NON_EU_REGION", "0") in ("1", "true", "yes")
    if region not in EU_REGIONS and not allow_non_eu:
        raise SettingsError(
            f"FRUITS_AWS_REGION={region} is outside the EU; set FRUITS_ALLOW_NON_EU_REGION=1 to allow it"
        )
    return region


def s3_endpoint_url() -> str | None:
    """Optional endpoint override, boto3's own convention (AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL);
    tests point it at moto. boto3 reads it by itself; pyarrow's S3 filesystem is given it."""
    return _env("AWS_ENDPOINT_URL_S3") or _env("AWS_ENDPOINT_URL")


# EMR writes the cluster id here on every node: steps running on the cluster need no env var.
EMR_JOB_FLOW_INFO = "/mnt/var/lib/info/job-flow.json"


def emr_cluster_id() -> str:
    """FRUITS_EMR_CLUSTER_ID, or the id of the EMR cluster this code runs on."""
    value = _env("FRUITS_EMR_CLUSTER_ID")
    if value is None and os.path.exists(EMR_JOB_FLOW_INFO):
        import json

        with open(EMR_JOB_FLOW_INFO) as fh:
            value = json.load(fh).get("jobFlowId")
    if value is None:
        raise SettingsError("FRUITS_EMR_CLUSTER_ID is not set (required for FRUITS_DEPLOYMENT=emr; "
                            "`fruits-assets emr up` prints it)")
    return value


@dataclass(frozen=True)
class EmrSettings:
    bucket: str
    region: str
    cluster_id: str
    staging_prefix: str
    images_dir: str | None  # local folder raw_images uploads from, if any

    @classmethod
    def from_env(cls) -> "EmrSettings":
        return cls(
            bucket=require("FRUITS_S3_BUCKET"),
            region=aws_region(),
            cluster_id=emr_cluster_id(),
            staging_prefix=_env("FRUITS_EMR_STAGING_PREFIX", "emr_staging"),
            images_dir=_env("FRUITS_IMAGES_DIR"),
        )

    @property
    def raw_uri(self) -> str:
        return f"s3://{self.bucket}/raw"

    @property
    def assets_uri(self) -> str:
        return f"s3://{self.bucket}/assets"
