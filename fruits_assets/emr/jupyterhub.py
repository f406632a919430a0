"""JupyterHub on the cluster: the admin password and project kernel steps, the package zip and
the notebook pushed where the hub lists it."""

from __future__ import annotations

from .. import settings
from .spec import (
    BOOTSTRAP_PREFIX,
    JUPYTER_PREFIX,
    JUPYTERHUB_ADMIN,
    JUPYTERHUB_SECRET_KEY,
    NOTEBOOK_LOCK,
    PIP_LOCK,
    PROJECT_ZIP,
    ClusterSpec,
)

# The steps' scripts are constants: settings reach them only as positional arguments ("$1", ...),
# list elements of the step's Args that bash never parses as code (a bucket name is validated
# too: settings.bucket_name). $0 names the step in bash's error messages.
PASSWORD_SCRIPT = (
    'set -euo pipefail; bucket="$1"; key="$2"; '
    'v=$(aws s3api head-object --bucket "$bucket" --key "$key" --query "VersionId || \'null\'" --output text); '
    'aws s3 cp "s3://$bucket/$key" - | sudo docker exec -i jupyterhub chpasswd; '
    'aws s3api delete-object --bucket "$bucket" --key "$key" --version-id "$v"'
)

KERNEL_VENV = "/opt/fruits-kernel"
KERNEL_SCRIPT = (
    'set -euo pipefail; bucket="$1"; shift; '
    f"for f in {PROJECT_ZIP} {PIP_LOCK} {NOTEBOOK_LOCK}; do "
    f'aws s3 cp "s3://$bucket/{BOOTSTRAP_PREFIX}/$f" "/tmp/$f"; sudo docker cp "/tmp/$f" "jupyterhub:/opt/$f"; done; '
    # the locks are resolved for Python 3.11 (make emr-requirements): fail here with that reason
    "sudo docker exec jupyterhub python3 -c 'import sys; assert sys.version_info >= (3, 11), "
    '"the hub container has Python %s; the kernel lock needs >= 3.11" % sys.version\'; '
    # a venv of its own: the hashed lock pins the kernel's packages without touching the hub's
    f"sudo docker exec jupyterhub python3 -m venv {KERNEL_VENV}; "
    f"sudo docker exec jupyterhub {KERNEL_VENV}/bin/pip install --quiet --require-hashes --no-deps -r /opt/{PIP_LOCK}; "
    f"sudo docker exec jupyterhub {KERNEL_VENV}/bin/pip install --quiet --require-hashes --no-deps "
    f"-r /opt/{NOTEBOOK_LOCK}; "
    f"sudo docker exec jupyterhub {KERNEL_VENV}/bin/python -m ipykernel install --name fruits-assets "
    '--display-name "Python 3 (fruits-assets)" "$@"'
)


def jupyterhub_password_step(spec: ClusterSpec) -> dict:
    """The first step when JupyterHub is on: EMR's documented way to change the admin password
    (chpasswd in the jupyterhub container). The password is not in the request, where DescribeStep
    and the console would show it: `emr up` stages it as an S3 object (private, encrypted, TLS
    only) and this step pipes it to chpasswd, then deletes that object version for good. A
    cluster whose password could not be set is terminated rather than left on the default."""
    return {
        "Name": "jupyterhub-admin-password",
        "ActionOnFailure": "TERMINATE_CLUSTER",
        "HadoopJarStep": {
            "Jar": "command-runner.jar",
            "Args": ["bash", "-c", PASSWORD_SCRIPT, "jupyterhub-admin-password", spec.bucket, JUPYTERHUB_SECRET_KEY],
        },
    }


def kernel_env(spec: ClusterSpec) -> dict[str, str]:
    """The project kernel's environment: the package zip and the deployment's settings."""
    env = {
        "PYTHONPATH": f"/opt/{PROJECT_ZIP}",
        "FRUITS_DEPLOYMENT": "emr",
        "FRUITS_S3_BUCKET": spec.bucket,
        "FRUITS_AWS_REGION": spec.region,
    }
    if spec.region not in settings.EU_REGIONS:
        env["FRUITS_ALLOW_NON_EU_REGION"] = "1"
    return env


def jupyterhub_kernel_step(spec: ClusterSpec) -> dict:
    """When JupyterHub is on: the project kernel in the hub's container ("Python 3 (fruits-assets)"),
    a venv installed from the hashed notebook lock, with the package zip `emr up` staged on its
    PYTHONPATH and the deployment's settings in the kernel's environment, so
    notebooks/explore.ipynb runs there unchanged. A failure leaves the cluster up (its Spark steps
    do not need the hub)."""
    env_args = [a for k, v in kernel_env(spec).items() for a in ("--env", k, v)]
    return {
        "Name": "jupyterhub-project-kernel",
        "ActionOnFailure": "CONTINUE",
        "HadoopJarStep": {
            "Jar": "command-runner.jar",
            "Args": ["bash", "-c", KERNEL_SCRIPT, "jupyterhub-project-kernel", spec.bucket, *env_args],
        },
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
