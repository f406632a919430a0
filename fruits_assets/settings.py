"""Every setting read from the environment (documented in README and docs/): the only module of
the package that reads ``os.environ``; everything else asks here."""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import overload

DEPLOYMENTS = ("local", "emr")
EU_REGIONS = (
    "eu-west-1",
    "eu-west-2",
    "eu-west-3",
    "eu-central-1",
    "eu-central-2",
    "eu-north-1",
    "eu-south-1",
    "eu-south-2",
)
DEFAULT_REGION = "eu-west-3"


class SettingsError(ValueError):
    """A setting is missing or invalid; the message names the variable."""


@overload
def _env(name: str) -> str | None: ...
@overload
def _env(name: str, default: str) -> str: ...
def _env(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name, "").strip()
    return value or default


def value(name: str, default: str | None = None) -> str | None:
    """Env var ``name`` stripped, or ``default`` when unset or blank."""
    return _env(name) or default


def integer(name: str, default: int) -> int:
    """An integer env var; anything else is a one-line error naming it."""
    raw = _env(name)
    try:
        return int(raw) if raw else default
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not an integer") from None


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


_MASTER = re.compile(r"^(local(\[(\*|[1-9]\d*)(,[1-9]\d*)?\])?|yarn|(spark|k8s)://\S+)$")


def spark_log_level() -> str:
    """FRUITS_SPARK_LOG_LEVEL (default ERROR): Spark's log level once the session is up."""
    value = _env("FRUITS_SPARK_LOG_LEVEL", "ERROR").upper()
    if value not in ("ALL", "DEBUG", "INFO", "WARN", "ERROR", "FATAL", "OFF"):
        raise SettingsError(f"FRUITS_SPARK_LOG_LEVEL={value!r} is not a log4j level (e.g. WARN, ERROR)")
    return value


def sensor_interval_s() -> int:
    """FRUITS_SENSOR_INTERVAL_S (default 60): seconds between two listings of the image store."""
    raw = _env("FRUITS_SENSOR_INTERVAL_S", "60")
    if not raw.isdigit() or int(raw) < 5:
        raise SettingsError(f"FRUITS_SENSOR_INTERVAL_S={raw!r} must be an integer >= 5 (seconds)")
    return int(raw)


def spark_master() -> str:
    """FRUITS_SPARK_MASTER (default local[*]): checked here so a typo is one line, not a Java trace."""
    value = _env("FRUITS_SPARK_MASTER", "local[*]")
    if not _MASTER.match(value):
        raise SettingsError(
            f"FRUITS_SPARK_MASTER={value!r} is not a Spark master: use local, local[N], "
            "local[*], yarn, spark://host:port or k8s://..."
        )
    return value


def spark_driver_memory() -> str:
    """FRUITS_SPARK_DRIVER_MEMORY (default 4g): the local Spark driver's heap."""
    return _env("FRUITS_SPARK_DRIVER_MEMORY", "4g")


def spark_driver_java_options() -> str:
    """FRUITS_SPARK_DRIVER_JAVA_OPTIONS (default C1-only JIT: local runs are short, see docs/performance.md)."""
    return _env("FRUITS_SPARK_DRIVER_JAVA_OPTIONS", "-XX:TieredStopAtLevel=1")


def spark_home() -> str | None:
    """SPARK_HOME: set by spark-submit on EMR (Spark and its Java come from the cluster then)."""
    return _env("SPARK_HOME")


def keras_home() -> str:
    """Where Keras caches downloaded weights (KERAS_HOME, Keras's own convention; default ~/.keras)."""
    return os.path.expanduser(_env("KERAS_HOME", "~/.keras"))


def dagster_home() -> str | None:
    """DAGSTER_HOME: the Dagster instance's folder (None when unset)."""
    return _env("DAGSTER_HOME")


def catalog_run() -> str | None:
    """FRUITS_CATALOG_RUN: a run id; the catalog then reads the outputs that run wrote or read
    (the report asset executes the notebook so, before the run publishes), else what is published."""
    return _env("FRUITS_CATALOG_RUN")


def report_notebook() -> str:
    """FRUITS_REPORT_NOTEBOOK: the notebook the report asset executes (default notebooks/explore.ipynb
    of the checkout the package runs from)."""
    default = str(Path(__file__).resolve().parents[1] / "notebooks" / "explore.ipynb")
    return _env("FRUITS_REPORT_NOTEBOOK", default)


def keep_versions() -> int:
    """FRUITS_KEEP_VERSIONS (default 3): table versions whose files are kept (time travel)."""
    n = integer("FRUITS_KEEP_VERSIONS", 3)
    if n < 1:
        raise SettingsError(f"FRUITS_KEEP_VERSIONS={n}: keep at least 1 version")
    return n


def gc_min_age_hours() -> int:
    """FRUITS_GC_MIN_AGE_HOURS (default 24): uncommitted files, and files of versions beyond
    FRUITS_KEEP_VERSIONS, are removed once this old (a live run's files are younger)."""
    n = integer("FRUITS_GC_MIN_AGE_HOURS", 24)
    if n < 0:
        raise SettingsError(f"FRUITS_GC_MIN_AGE_HOURS={n}: must be >= 0")
    return n


def emr_staging_prefix() -> str:
    """FRUITS_EMR_STAGING_PREFIX (default emr_staging): step packages and staged parts in the bucket."""
    return _env("FRUITS_EMR_STAGING_PREFIX", "emr_staging")


def java_executable() -> str:
    """The java Spark will start: $JAVA_HOME/bin/java, else the one on PATH."""
    home = _env("JAVA_HOME")
    candidate = os.path.join(home, "bin", "java") if home else shutil.which("java")
    if not candidate or not os.access(candidate, os.X_OK):
        where = f"JAVA_HOME={home} has no bin/java" if home else "no java on PATH and JAVA_HOME is not set"
        raise SettingsError(f"Java 17+ is required by Spark: {where} (install e.g. openjdk-17-jre-headless)")
    return candidate


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


def emr_cluster_id(given: str | None = None) -> str:
    """``given``, else FRUITS_EMR_CLUSTER_ID, else the id of the EMR cluster this code runs on."""
    value = given or _env("FRUITS_EMR_CLUSTER_ID")
    if value is None and os.path.exists(EMR_JOB_FLOW_INFO):
        with open(EMR_JOB_FLOW_INFO) as fh:
            value = json.load(fh).get("jobFlowId")
    if value is None:
        raise SettingsError(
            "FRUITS_EMR_CLUSTER_ID is not set (required for FRUITS_DEPLOYMENT=emr; `fruits-assets emr up` prints it)"
        )
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
            staging_prefix=emr_staging_prefix(),
            images_dir=_env("FRUITS_IMAGES_DIR"),
        )

    @property
    def raw_uri(self) -> str:
        return f"s3://{self.bucket}/raw"

    @property
    def assets_uri(self) -> str:
        return f"s3://{self.bucket}/assets"


# -- EMR security settings (docs/emr.md): read by emr/spec.py ClusterSpec.from_env.

JUPYTERHUB_DEFAULT_PASSWORD = "jupyter"  # EMR's documented default for the jovyan admin user
JUPYTERHUB_MIN_PASSWORD = 12


def flag(name: str) -> bool:
    """A 0/1 env var (also true/false, yes/no); anything else is refused rather than guessed."""
    value = (_env(name, "0") or "0").lower()
    if value not in ("0", "1", "true", "false", "yes", "no"):
        raise SettingsError(f"{name}={value!r} is not 0 or 1")
    return value in ("1", "true", "yes")


def emr_kms_key_arn(region: str) -> str | None:
    """FRUITS_EMR_KMS_KEY_ARN: the KMS key EMR encrypts local disks and EBS volumes with (key or alias
    ARN, in the cluster's region; the EMR roles must be allowed to use it in the key policy). None if
    unset: local-disk encryption cannot work without a key, so `emr plan` shows a placeholder and
    `emr up` refuses."""
    arn = _env("FRUITS_EMR_KMS_KEY_ARN")
    if arn is None:
        return None
    parts = arn.split(":")
    if len(parts) != 6 or parts[0] != "arn" or parts[2] != "kms":
        raise SettingsError(f"FRUITS_EMR_KMS_KEY_ARN={arn} is not a KMS key ARN (arn:aws:kms:REGION:ACCOUNT:key/ID)")
    if parts[3] != region:  # EMR cannot use a key from another region
        raise SettingsError(f"FRUITS_EMR_KMS_KEY_ARN is in {parts[3]}, not in the cluster's region {region}")
    return arn


def emr_tls_certs_s3() -> str | None:
    """FRUITS_EMR_TLS_CERTS_S3: s3://.../NAME.zip of PEM files (privateKey.pem, certificateChain.pem,
    trustedCertificates.pem at the top of the zip, certificate valid for the nodes' private DNS names,
    e.g. *.eu-west-3.compute.internal, readable by the EC2 instance role). Set: in-transit encryption
    (TLS between nodes) is turned on; unset (default): off."""
    uri = _env("FRUITS_EMR_TLS_CERTS_S3")
    if uri is not None and not (uri.startswith("s3://") and uri.endswith(".zip")):
        raise SettingsError(f"FRUITS_EMR_TLS_CERTS_S3={uri} is not an s3://BUCKET/KEY.zip URI")
    return uri


def emr_jupyterhub() -> bool:
    """FRUITS_EMR_JUPYTERHUB=1 installs JupyterHub and Livy on the cluster (default 0: not installed)."""
    return flag("FRUITS_EMR_JUPYTERHUB")


def emr_jupyterhub_password() -> str:
    """FRUITS_EMR_JUPYTERHUB_PASSWORD: the password given to JupyterHub's admin user (jovyan), required
    with FRUITS_EMR_JUPYTERHUB=1; the documented default and short ones are refused. Never printed."""
    value = os.environ.get("FRUITS_EMR_JUPYTERHUB_PASSWORD", "")
    if not value.strip():
        raise SettingsError("FRUITS_EMR_JUPYTERHUB_PASSWORD is not set (required when FRUITS_EMR_JUPYTERHUB=1)")
    if value == JUPYTERHUB_DEFAULT_PASSWORD:
        raise SettingsError("FRUITS_EMR_JUPYTERHUB_PASSWORD is JupyterHub's documented default; choose another")
    if len(value) < JUPYTERHUB_MIN_PASSWORD or "\n" in value:  # a newline would break chpasswd's input
        raise SettingsError(
            f"FRUITS_EMR_JUPYTERHUB_PASSWORD must be one line of at least {JUPYTERHUB_MIN_PASSWORD} characters"
        )
    return value
