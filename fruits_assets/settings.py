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
    """Return env var ``name`` or raise a one-line error naming it; a value with a validator
    (_VALIDATED below: it reaches a shell, a URL or an ARN) is checked on the way."""
    value = _env(name)
    if value is None:
        raise SettingsError(f"{name} is not set (required for FRUITS_DEPLOYMENT={deployment()})")
    check = _VALIDATED.get(name)
    return check(value, name) if check else value


# -- Values that reach a shell (EMR steps), a URL (s3://...) or an ARN (IAM policies) are checked
# against what AWS itself accepts, so nothing else can get through: one line naming the setting.

_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_IP_SHAPED = re.compile(r"^\d{1,3}(\.\d{1,3}){3}$")
_BUCKET_RESERVED_PREFIXES = ("xn--", "sthree-", "amzn-s3-demo-")
_BUCKET_RESERVED_SUFFIXES = ("-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3")


def bucket_name(value: str, setting: str = "FRUITS_S3_BUCKET") -> str:
    """An S3 general purpose bucket name by AWS's naming rules: 3-63 characters, lowercase letters,
    digits, dots and hyphens, starting and ending with a letter or digit, no "..", not shaped like
    an IP address, none of the reserved prefixes and suffixes."""
    if (
        not _BUCKET.match(value)
        or ".." in value
        or _IP_SHAPED.match(value)
        or value.startswith(_BUCKET_RESERVED_PREFIXES)
        or value.endswith(_BUCKET_RESERVED_SUFFIXES)
    ):
        raise SettingsError(
            f"{setting}={value!r} is not a valid S3 bucket name (3-63 of a-z 0-9 . -, "
            "starting and ending with a letter or digit, not an IP address)"
        )
    return value


_PREFIX = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9_.-]*(/[A-Za-z0-9_-][A-Za-z0-9_.-]*)*$")


def key_prefix(value: str, setting: str) -> str:
    """An S3 key prefix made of plain path segments (letters, digits, . _ -; no leading or trailing
    slash, no "." or ".." segment): safe in a URL, a shell word and an IAM resource ARN."""
    if len(value) > 200 or not _PREFIX.match(value) or any(p in (".", "..") for p in value.split("/")):
        raise SettingsError(f"{setting}={value!r} is not a plain S3 prefix (segments of A-Z a-z 0-9 . _ - joined by /)")
    return value


_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d{1,2}$")


def region_name(value: str, setting: str = "FRUITS_AWS_REGION") -> str:
    """An AWS region name such as eu-west-3: it reaches endpoints' URLs and policies' ARNs."""
    if not _REGION.match(value):
        raise SettingsError(f"{setting}={value!r} is not an AWS region name (e.g. eu-west-3)")
    return value


_INSTANCE_TYPE = re.compile(r"^[a-z][a-z0-9-]*\.[a-z0-9]+$")


def instance_type(value: str, setting: str = "instance type") -> str:
    """An EC2 instance type such as m5.xlarge (family.size)."""
    if not _INSTANCE_TYPE.match(value):
        raise SettingsError(f"{setting}={value!r} is not an EC2 instance type (e.g. m5.xlarge)")
    return value


_VALIDATED = {"FRUITS_S3_BUCKET": bucket_name}


def s3_bucket() -> str:
    """FRUITS_S3_BUCKET: the project bucket (required with FRUITS_DEPLOYMENT=emr), a valid bucket name."""
    return require("FRUITS_S3_BUCKET")


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


def automation() -> bool:
    """FRUITS_AUTOMATION=1 starts the image-store sensor and the automation conditions' sensor by
    default (``make serve`` sets it); default 0: both stopped (``make demo``, ``make ui``). A
    switch flipped in the UI is kept by the instance and wins over this default."""
    return flag("FRUITS_AUTOMATION")


def automation_interval_s() -> int:
    """FRUITS_AUTOMATION_INTERVAL_S (default 30): seconds between two evaluations of the assets'
    automation conditions (a read of the instance, no image read)."""
    n = integer("FRUITS_AUTOMATION_INTERVAL_S", 30)
    if n < 5:
        raise SettingsError(f"FRUITS_AUTOMATION_INTERVAL_S={n} must be >= 5 (seconds)")
    return n


_CRON = re.compile(r"^([0-9A-Za-z*/,?-]+\s+){4}[0-9A-Za-z*/,?-]+$")


def probe_cron() -> str:
    """FRUITS_PROBE_CRON (default ``0 3 * * *``, daily at 03:00 UTC): when feature_probe is retrained
    under automation if its inputs changed since the previous tick of this schedule."""
    value = _env("FRUITS_PROBE_CRON", "0 3 * * *")
    if not _CRON.match(value):
        raise SettingsError(f"FRUITS_PROBE_CRON={value!r} is not a 5-field cron schedule (e.g. '0 3 * * *')")
    return value


def probe_min_changed() -> float | None:
    """FRUITS_PROBE_MIN_CHANGED (default 0.05): under automation, feature_probe is also retrained
    once this fraction of image_features' rows was added, changed or removed since it last ran;
    ``off``: on its schedule only."""
    raw = _env("FRUITS_PROBE_MIN_CHANGED", "0.05").lower()
    if raw == "off":
        return None
    try:
        fraction = float(raw)
    except ValueError:
        fraction = -1.0
    if not 0 < fraction <= 1:
        raise SettingsError(f"FRUITS_PROBE_MIN_CHANGED={raw!r} must be a fraction in (0, 1] or off")
    return fraction


def max_concurrent_runs() -> int:
    """FRUITS_MAX_CONCURRENT_RUNS (default 1): runs the served instance's queue lets run at once;
    each local run is a Spark JVM using every core, so one at a time per machine."""
    n = integer("FRUITS_MAX_CONCURRENT_RUNS", 1)
    if n < 1:
        raise SettingsError(f"FRUITS_MAX_CONCURRENT_RUNS={n} must be >= 1")
    return n


# -- `make serve` and compose (docs/serve.md): read by cli/serve.py.


def _port(name: str, default: int) -> int:
    n = integer(name, default)
    if not 0 < n < 65536:
        raise SettingsError(f"{name}={n} is not a TCP port")
    return n


def serve_dir() -> str:
    """FRUITS_SERVE_DIR (default .serve/): the served deployment's PostgreSQL folder, logs and pid files."""
    return str(Path(_env("FRUITS_SERVE_DIR", ".serve")).expanduser().resolve())


def postgres_dsn() -> str | None:
    """FRUITS_POSTGRES_DSN: an existing PostgreSQL server for the served instance
    (postgresql://USER:PASSWORD@HOST:PORT/DB); unset: a server of its own under FRUITS_SERVE_DIR."""
    value = _env("FRUITS_POSTGRES_DSN")
    if value is not None and not value.startswith(("postgresql://", "postgres://")):
        raise SettingsError("FRUITS_POSTGRES_DSN is not a postgresql:// URL")  # never echo: it may hold a password
    return value


def postgres_port() -> int:
    """FRUITS_POSTGRES_PORT (default 5433, beside a system server's 5432): the own server's port on 127.0.0.1."""
    return _port("FRUITS_POSTGRES_PORT", 5433)


def serve_host() -> str:
    """FRUITS_SERVE_HOST (default 127.0.0.1): the address the webserver and code server listen on."""
    return _env("FRUITS_SERVE_HOST", "127.0.0.1")


def serve_port() -> int:
    """FRUITS_SERVE_PORT (default 3000): the webserver's port."""
    return _port("FRUITS_SERVE_PORT", 3000)


def code_host() -> str:
    """FRUITS_CODE_HOST (default 127.0.0.1): where the daemon and the webserver reach the code server."""
    return _env("FRUITS_CODE_HOST", "127.0.0.1")


def code_port() -> int:
    """FRUITS_CODE_PORT (default 4000): the code server's gRPC port."""
    return _port("FRUITS_CODE_PORT", 4000)


def serve_environment(home: str) -> dict[str, str]:
    """The environment of the served processes: this one, with DAGSTER_HOME=home and automation on
    unless FRUITS_AUTOMATION says otherwise."""
    # Absolute paths: the processes must agree whatever folder each one runs from.
    env = dict(os.environ, DAGSTER_HOME=home, FRUITS_DATA_ROOT=data_root(), FRUITS_IMAGES_DIR=images_dir())
    env["FRUITS_AUTOMATION"] = _env("FRUITS_AUTOMATION", "1")
    return env


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


def calibration_images() -> int:
    """FRUITS_CALIBRATION_IMAGES (default 100): how many images of the inventory (a seeded sample)
    calibrate the int8 feature model's activation ranges (docs/performance.md); fewer convert faster."""
    n = integer("FRUITS_CALIBRATION_IMAGES", 100)
    if not 1 <= n <= 10_000:
        raise SettingsError(f"FRUITS_CALIBRATION_IMAGES={n}: must be between 1 and 10000")
    return n


def model_cache_dir() -> str | None:
    """FRUITS_MODEL_CACHE: folder of this machine's converted feature models, keyed by build key, so
    a fresh data root does not pay the Keras build and LiteRT conversion again (default
    $XDG_CACHE_HOME/fruits-assets/feature-models, XDG's default being ~/.cache); ``off``: no cache."""
    value = _env("FRUITS_MODEL_CACHE")
    if value is not None and value.lower() == "off":
        return None
    if value is None:
        base = _env("XDG_CACHE_HOME") or os.path.join("~", ".cache")
        value = os.path.join(base, "fruits-assets", "feature-models")
    return str(Path(value).expanduser().resolve())


def dagster_home() -> str | None:
    """DAGSTER_HOME: the Dagster instance's folder (None when unset)."""
    return _env("DAGSTER_HOME")


INSTANCE_SETTINGS = ("DAGSTER_HOME", "FRUITS_DATA_ROOT")


def _launch_environment() -> dict[str, str]:
    """The environment this process was started with (Linux: /proc/self/environ), as it was before
    any library changed ``os.environ``; empty where /proc is not available."""
    try:
        raw = Path("/proc/self/environ").read_bytes()
    except OSError:
        return {}
    pairs = (item.split(b"=", 1) for item in raw.split(b"\0") if b"=" in item)
    return {k.decode(errors="replace"): v.decode(errors="replace") for k, v in pairs}


def _dotenv_values(folder: str) -> dict[str, str]:
    path = Path(folder) / ".env"
    if not path.is_file():
        return {}
    from dotenv import dotenv_values

    return {k: v for k, v in dotenv_values(path).items() if v is not None}


def _same_path(a: str, b: str) -> bool:
    return Path(a).expanduser().resolve() == Path(b).expanduser().resolve()


def check_not_redirected(cwd: str | None = None) -> None:
    """Refuse an instance or data root that a ``.env`` file put in place of the one given at launch.

    The dagster CLI overlays the working directory's ``.env`` on the environment, so
    ``DAGSTER_HOME=/elsewhere dagster asset materialize ...`` run from this folder would write into
    the instance ``.env`` names. The value in use came from ``.env`` when it equals ``.env``'s and
    differs from the one this process was started with: that is refused in one line."""
    folder = cwd or os.getcwd()
    dotenv, launched = _dotenv_values(folder), _launch_environment()
    for name in INSTANCE_SETTINGS:
        given, in_use, from_file = (launched.get(name) or "").strip(), _env(name), dotenv.get(name)
        if given and in_use and from_file and in_use == from_file.strip() and not _same_path(given, in_use):
            raise SettingsError(
                f"{name}={given} was given, but {folder}/.env replaced it with {in_use} (the dagster CLI loads "
                f".env over the environment): remove {name} from that .env"
            )


def check_dotenv_agrees(environment: dict[str, str], cwd: str | None = None) -> None:
    """Refuse to start a Dagster process in a folder whose ``.env`` would replace the instance or
    data root given in ``environment`` (the dagster CLIs, daemon and webserver load it over it)."""
    folder = cwd or os.getcwd()
    dotenv = _dotenv_values(folder)
    for name in INSTANCE_SETTINGS:
        if dotenv.get(name) and environment.get(name) and not _same_path(dotenv[name], environment[name]):
            raise SettingsError(
                f"{folder}/.env sets {name}={dotenv[name]}, which Dagster would load over {environment[name]}: "
                f"remove {name} from that .env"
            )


def instance_description() -> str:
    """One line naming the instance and the data root in use, for logs, the summary and the UI."""
    home = dagster_home() or "unset (a temporary instance)"
    return f"instance DAGSTER_HOME={home}; data root FRUITS_DATA_ROOT={data_root()}"


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


def s3_inventory_manifest() -> str | None:
    """FRUITS_S3_INVENTORY_MANIFEST: an S3 Inventory report's manifest.json (s3:// URI) read in
    place of listing the image store (buckets of millions of objects)."""
    uri = _env("FRUITS_S3_INVENTORY_MANIFEST")
    if uri and not (uri.startswith("s3://") and uri.endswith("manifest.json")):
        raise SettingsError(f"FRUITS_S3_INVENTORY_MANIFEST={uri!r} must be the s3:// URI of a manifest.json")
    return uri or None


def s3_inventory_max_age_hours() -> int:
    """FRUITS_S3_INVENTORY_MAX_AGE_HOURS (default 48): an older inventory report is refused."""
    n = integer("FRUITS_S3_INVENTORY_MAX_AGE_HOURS", 48)
    if n < 1:
        raise SettingsError(f"FRUITS_S3_INVENTORY_MAX_AGE_HOURS={n}: must be >= 1")
    return n


def max_image_bytes() -> int:
    """FRUITS_MAX_IMAGE_MB (default 64): a larger file is rejected with the reason, never read."""
    n = integer("FRUITS_MAX_IMAGE_MB", 64)
    if n < 1:
        raise SettingsError(f"FRUITS_MAX_IMAGE_MB={n}: must be >= 1")
    return n << 20


def max_batch_bytes() -> int:
    """FRUITS_MAX_BATCH_MB (default 256): bytes a featurization task holds read at once."""
    n = integer("FRUITS_MAX_BATCH_MB", 256)
    if n < 1:
        raise SettingsError(f"FRUITS_MAX_BATCH_MB={n}: must be >= 1")
    return n << 20


def emr_staging_prefix() -> str:
    """FRUITS_EMR_STAGING_PREFIX (default emr_staging): step packages and staged parts in the bucket."""
    return key_prefix(_env("FRUITS_EMR_STAGING_PREFIX", "emr_staging"), "FRUITS_EMR_STAGING_PREFIX")


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
    region_name(region)
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
            bucket=s3_bucket(),
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


_KMS_ARN = re.compile(r"^arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:(key/[A-Za-z0-9-]{1,128}|alias/[A-Za-z0-9/_-]{1,250})$")


def emr_kms_key_arn(region: str) -> str | None:
    """FRUITS_EMR_KMS_KEY_ARN: the KMS key EMR encrypts local disks and EBS volumes with (key or alias
    ARN, in the cluster's region; the EMR roles must be allowed to use it in the key policy). None if
    unset: local-disk encryption cannot work without a key, so `emr plan` shows a placeholder and
    `emr up` refuses."""
    arn = _env("FRUITS_EMR_KMS_KEY_ARN")
    if arn is None:
        return None
    parts = arn.split(":")
    if len(parts) != 6 or parts[0] != "arn" or parts[2] != "kms" or not _KMS_ARN.match(arn):
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
    if uri is None:
        return None
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    if not (uri.startswith("s3://") and uri.endswith(".zip")) or not _PREFIX.match(key):
        raise SettingsError(f"FRUITS_EMR_TLS_CERTS_S3={uri} is not an s3://BUCKET/KEY.zip URI")
    bucket_name(bucket, "FRUITS_EMR_TLS_CERTS_S3's bucket")
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


_RELEASE = re.compile(r"^emr-7\.\d+\.\d+$")


def emr_release(default: str) -> str:
    """FRUITS_EMR_RELEASE: an EMR 7.x release label (emr-7.N.N)."""
    value = _env("FRUITS_EMR_RELEASE", default)
    if not _RELEASE.match(value):
        raise SettingsError(f"FRUITS_EMR_RELEASE={value} is not an EMR 7.x release label (e.g. emr-7.10.0)")
    return value


_KEY_NAME = re.compile(r"^[A-Za-z0-9 ._+=,@:/-]{1,255}$")


def emr_key_name() -> str | None:
    """FRUITS_EMR_KEY_NAME: an EC2 key pair for SSH to the nodes (unset: none; SSM needs no key)."""
    value = _env("FRUITS_EMR_KEY_NAME")
    if value is not None and not _KEY_NAME.match(value):
        raise SettingsError(f"FRUITS_EMR_KEY_NAME={value!r} is not an EC2 key pair name")
    return value


# -- EMR network settings (docs/emr.md, "Network"): read by emr/spec.py, checked against AWS by emr/network.py.

_SUBNET = re.compile(r"^subnet-[0-9a-f]{8,17}$")
_SECURITY_GROUP = re.compile(r"^sg-[0-9a-f]{8,17}$")
EMR_SECURITY_GROUP_SETTINGS = (
    "FRUITS_EMR_MASTER_SECURITY_GROUP",
    "FRUITS_EMR_SLAVE_SECURITY_GROUP",
    "FRUITS_EMR_SERVICE_ACCESS_SECURITY_GROUP",
)


def emr_subnet_ids() -> tuple[str, ...]:
    """FRUITS_EMR_SUBNET_IDS: comma-separated private subnets (one VPC) for the instance fleets."""
    raw = _env("FRUITS_EMR_SUBNET_IDS") or ""
    ids = tuple(s.strip() for s in raw.split(",") if s.strip())
    for subnet in ids:
        if not _SUBNET.match(subnet):
            raise SettingsError(f"FRUITS_EMR_SUBNET_IDS: {subnet!r} is not a subnet id (subnet-0123abcd...)")
    return ids


def emr_security_groups() -> tuple[str, str, str] | None:
    """The three EMR-managed security groups (master, core/task, service access), all or none;
    none: `emr up` creates them, without any ingress rule (EMR adds the rules it needs)."""
    values = [_env(name) for name in EMR_SECURITY_GROUP_SETTINGS]
    if not any(values):
        return None
    for name, sg in zip(EMR_SECURITY_GROUP_SETTINGS, values):
        if sg is None:
            raise SettingsError(f"{name} is not set (set the three EMR security group settings, or none)")
        if not _SECURITY_GROUP.match(sg):
            raise SettingsError(f"{name}={sg!r} is not a security group id (sg-0123abcd...)")
    return values[0] or "", values[1] or "", values[2] or ""


def emr_allow_default_vpc() -> bool:
    """FRUITS_EMR_ALLOW_DEFAULT_VPC=1: let `emr up` use the default VPC (public subnets) when no
    FRUITS_EMR_SUBNET_IDS are given, or given there. Default 0: refused."""
    return flag("FRUITS_EMR_ALLOW_DEFAULT_VPC")


def emr_livy() -> bool:
    """FRUITS_EMR_LIVY=1 installs Livy (a REST API to Spark on port 8998, without authentication).
    Default 0: the project's kernel does not need it."""
    return flag("FRUITS_EMR_LIVY")


def emr_allow_public_access_off() -> bool:
    """FRUITS_EMR_ALLOW_BLOCK_PUBLIC_ACCESS_OFF=1: let `emr up` run in an account whose EMR block
    public access setting is off. Default 0: refused."""
    return flag("FRUITS_EMR_ALLOW_BLOCK_PUBLIC_ACCESS_OFF")
