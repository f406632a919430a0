"""What the EMR cluster looks like: its settings (every field has an env var, docs/emr.md)."""

from __future__ import annotations

from dataclasses import dataclass, field

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
