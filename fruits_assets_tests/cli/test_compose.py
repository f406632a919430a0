"""compose.yaml and the Dockerfile mirror `make serve` (issue 22). No image can be built or pulled
on the build machines: the compose file is resolved by a real Compose CLI (`docker compose config`,
or Debian's docker-compose), as `up` would resolve it, without a Docker daemon."""

from __future__ import annotations

import os
import re
import secrets
import shutil
import subprocess

import pytest
import yaml

from fruits_assets.cli.serve import SERVICES, service_argv
from fruits_assets_tests.conftest import REPO

COMPOSE = REPO / "compose.yaml"


def compose_cli() -> list[str]:
    if shutil.which("docker") and subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0:
        return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    pytest.fail("no Compose CLI: `make compose-cli` installs Debian's docker-compose")


def config(tmp_path, **env: str) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("FRUITS_", "COMPOSE_"))}
    environment.update(env)
    return subprocess.run(
        [*compose_cli(), "-f", str(COMPOSE), "--project-directory", str(REPO), "config"],
        cwd=tmp_path,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_compose_runs_what_make_serve_runs(tmp_path):
    password = secrets.token_hex(8)
    proc = config(tmp_path, FRUITS_POSTGRES_PASSWORD=password, FRUITS_IMAGES_DIR=str(tmp_path / "images"))
    assert proc.returncode == 0, proc.stderr
    services = yaml.safe_load(proc.stdout)["services"]
    assert set(services) == {"postgres", *SERVICES}
    for name in SERVICES:
        service = services[name]
        # The very command `make serve` starts for this service (python of the image, not of the venv).
        assert service["command"] == service_argv(name, python="python")
        assert service["environment"]["FRUITS_POSTGRES_DSN"] == f"postgresql://fruits:{password}@postgres:5432/dagster"
        assert service["environment"]["FRUITS_CODE_HOST"] == "code"
        assert service["environment"]["FRUITS_AUTOMATION"] == "1"
        volumes = {v["target"] if isinstance(v, dict) else v.split(":")[1]: v for v in service["volumes"]}
        # The data root, the watched images (read-only) and the instance's folder, shared by the three.
        assert set(volumes) == {"/data", "/images", "/opt/dagster/home"}, volumes
    assert services["postgres"]["environment"]["POSTGRES_PASSWORD"] == password
    assert "ports" not in services["postgres"] and "ports" not in services["code"]
    (published,) = services["webserver"]["ports"]
    published = published if isinstance(published, str) else f"{published['host_ip']}:{published['published']}"
    assert str(published).startswith("127.0.0.1:"), published  # the UI on loopback only

    # `make serve` runs the same script.
    make = subprocess.run(["make", "-n", "-C", str(REPO), "serve"], capture_output=True, text=True, timeout=60)
    assert "-m fruits_assets.cli.serve start" in make.stdout, make.stdout + make.stderr


def test_compose_refuses_to_start_without_a_password(tmp_path):
    """The password is never in the repository, and there is no default one."""
    proc = config(tmp_path)
    assert proc.returncode != 0 and "FRUITS_POSTGRES_PASSWORD" in proc.stderr, proc.stderr
    text = COMPOSE.read_text()
    assert re.findall(r"PASSWORD: (\S+)", text) == ["${FRUITS_POSTGRES_PASSWORD:?set"]
    assert re.findall(r"postgresql://fruits:(.*?)@postgres", text) == [
        "${FRUITS_POSTGRES_PASSWORD:?set FRUITS_POSTGRES_PASSWORD (docs/serve.md)}"
    ]


def test_dockerfile_has_what_make_serve_needs():
    text = (REPO / "Dockerfile").read_text()
    assert text.splitlines()[[line.startswith("FROM ") for line in text.splitlines()].index(True)].startswith(
        "FROM python:3.11"
    )
    for needed in ("openjdk-17-jre-headless", "libopenblas0-pthread", "pip install", "FRUITS_DATA_ROOT=/data"):
        assert needed in text, needed
    ignored = (REPO / ".dockerignore").read_text().split()
    assert ignored[ignored.index("*") :][:1] == ["*"]  # nothing but what the image needs (no .env, data, .serve)
