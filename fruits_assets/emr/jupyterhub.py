"""JupyterHub on the cluster: the admin password and project kernel steps, the package zip and
the notebook pushed where the hub lists it."""

from __future__ import annotations

from .. import settings
from .spec import (
    BOOTSTRAP_PREFIX,
    JUPYTER_PREFIX,
    JUPYTERHUB_ADMIN,
    JUPYTERHUB_SECRET_KEY,
    NOTEBOOK_PACKAGES,
    PROJECT_ZIP,
    ClusterSpec,
)


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
