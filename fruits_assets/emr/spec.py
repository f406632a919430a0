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
# Hashed locks (`make emr-requirements`): pip first, the nodes' venv, the hub's kernel venv.
PIP_LOCK = "requirements-pip.txt"
NODES_LOCK = "requirements-emr.txt"
NOTEBOOK_LOCK = "requirements-notebook.txt"
# The roles the cluster runs with (emr/roles.py); the instance profile has the instance role's name.
SERVICE_ROLE = "fruits-assets-emr-service"
INSTANCE_ROLE = "fruits-assets-emr-instance"
ON_DEMAND_TYPES = ("m5.xlarge", "m6i.xlarge", "m5a.xlarge")
SPOT_TYPES = ("m5.xlarge", "m5a.xlarge", "m6i.xlarge", "m6a.xlarge", "m7i.xlarge")
PROJECT_TAG = ("project", "fruits-assets")  # the IAM policy below scopes every cluster action to it
# AmazonEMRServicePolicy_v2 lets EMR use only the subnets and security groups carrying this tag.
EMR_MANAGED_TAG = ("for-use-with-amazon-emr-managed-policies", "true")
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
    service_role: str = SERVICE_ROLE
    instance_profile: str = INSTANCE_ROLE
    staging_prefix: str = "emr_staging"
    # EMR-managed security groups (master, core/task, service access); None: created by `emr up`.
    master_sg: str | None = None
    slave_sg: str | None = None
    service_sg: str | None = None
    allow_default_vpc: bool = False  # the default VPC's public subnets: refused unless asked for
    allow_public_access_off: bool = False  # EMR block public access off in the account: refused unless asked for
    arrow_batch_rows: int = 256
    tags: dict[str, str] = field(
        default_factory=lambda: {PROJECT_TAG[0]: PROJECT_TAG[1], "managed-by": "fruits-assets-cli"}
    )
    kms_key_arn: str | None = None  # local-disk + EBS encryption key; None: plan only
    tls_certs_s3: str | None = None  # PEM zip; set: in-transit encryption on
    jupyterhub: bool = False  # JupyterHub: an admin web login, so off unless asked for
    livy: bool = False  # Livy: Spark over REST without authentication, off unless asked for
    jupyterhub_password: str | None = field(default=None, repr=False)  # never in reprs or the plan

    @classmethod
    def from_env(cls, allow_non_eu: bool | None = None) -> "ClusterSpec":
        region = settings.aws_region(allow_non_eu)
        jupyterhub = settings.emr_jupyterhub()
        groups = settings.emr_security_groups()
        spec = cls(
            bucket=settings.s3_bucket(),
            region=region,
            release=settings.emr_release(RELEASE),
            core_units=settings.integer("FRUITS_EMR_CORE_UNITS", 2),
            task_spot_units=settings.integer("FRUITS_EMR_TASK_SPOT_UNITS", 2),
            min_units=settings.integer("FRUITS_EMR_MIN_UNITS", 2),
            max_units=settings.integer("FRUITS_EMR_MAX_UNITS", 20),
            idle_timeout_s=settings.integer("FRUITS_EMR_IDLE_TIMEOUT_S", 3600),
            subnet_ids=settings.emr_subnet_ids(),
            key_name=settings.emr_key_name(),
            staging_prefix=settings.emr_staging_prefix(),
            master_sg=groups[0] if groups else None,
            slave_sg=groups[1] if groups else None,
            service_sg=groups[2] if groups else None,
            allow_default_vpc=settings.emr_allow_default_vpc(),
            allow_public_access_off=settings.emr_allow_public_access_off(),
            livy=settings.emr_livy(),
            kms_key_arn=settings.emr_kms_key_arn(region),
            tls_certs_s3=settings.emr_tls_certs_s3(),
            jupyterhub=jupyterhub,
            jupyterhub_password=settings.emr_jupyterhub_password() if jupyterhub else None,
        )
        if not 1 <= spec.min_units <= spec.max_units:
            raise settings.SettingsError("FRUITS_EMR_MIN_UNITS must be >= 1 and <= FRUITS_EMR_MAX_UNITS")
        if spec.min_units < spec.core_units:
            raise settings.SettingsError("FRUITS_EMR_MIN_UNITS must be >= FRUITS_EMR_CORE_UNITS")
        return spec

    def __post_init__(self) -> None:
        # Also for a spec built in code: what reaches the steps' shell and the policies' ARNs is
        # checked here, whatever its source.
        settings.bucket_name(self.bucket, "bucket")
        settings.region_name(self.region, "region")
        settings.key_prefix(self.staging_prefix, "staging prefix")
        for itype in (*ON_DEMAND_TYPES, *SPOT_TYPES):
            settings.instance_type(itype)

    @property
    def bootstrap_uri(self) -> str:
        return f"s3://{self.bucket}/{BOOTSTRAP_PREFIX}/bootstrap.sh"

    def bootstrap_file_uri(self, name: str) -> str:
        return f"s3://{self.bucket}/{BOOTSTRAP_PREFIX}/{name}"

    @property
    def applications(self) -> list[str]:
        # The step launcher needs neither; the project's kernel reads S3 itself, without Livy.
        return ["Hadoop", "Spark", *(["JupyterHub"] if self.jupyterhub else []), *(["Livy"] if self.livy else [])]
