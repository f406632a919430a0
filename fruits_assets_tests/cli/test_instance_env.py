"""One instance, explicitly (issue 22). After one `make demo` (which wrote ``.env`` with its
DAGSTER_HOME), ``DAGSTER_HOME=/elsewhere FRUITS_DATA_ROOT=/elsewhere/data make demo`` wrote the run
history into the first instance and the data into the new root: Dagster's CLIs load ``./.env``
over the environment. Now make removes that line, the explicit instance is the one used, and a
``.env`` that would still redirect a run is refused in one line before anything is written."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from dagster import DagsterInstance
from dagster._core.instance.ref import InstanceRef
from dagster._utils.env import environ

from fruits_assets.defs.instance import init_home
from fruits_assets_tests.conftest import REPO, run_env

DAGSTER = str(Path(sys.executable).with_name("dagster"))
MATERIALIZE = [DAGSTER, "asset", "materialize", "-m", "fruits_assets.definitions", "--select", "raw_images"]


def runs_in(home: Path) -> int:
    # The project's dagster.yaml names its folder through DAGSTER_HOME, as the CLI would set it.
    with environ({"DAGSTER_HOME": str(home)}), DagsterInstance.from_ref(InstanceRef.from_dir(str(home))) as instance:
        return instance.get_runs_count()


def setup(tmp_path: Path, images: Path, weights: Path) -> tuple[Path, Path, dict]:
    first = tmp_path / "first"  # the instance the earlier `make demo` wrote to .env
    init_home(first)
    project = tmp_path / "project"
    project.mkdir()
    env = run_env(tmp_path / "elsewhere", images, weights)  # DAGSTER_HOME, FRUITS_DATA_ROOT: elsewhere
    init_home(env["DAGSTER_HOME"])
    return first, project, env


def run(args, project: Path, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(args, cwd=project, env=env, capture_output=True, text=True, timeout=600)


def test_make_drops_the_dotenv_instance_and_the_explicit_one_is_used(tmp_path, sample_images, seeded_weights):
    (tmp_path / "elsewhere").mkdir()
    first, project, env = setup(tmp_path, sample_images, seeded_weights)
    (project / ".env").write_text(f"DAGSTER_HOME={first}\n")  # exactly what `make demo` wrote before
    make = run(["make", "-s", "-f", str(REPO / "Makefile"), "no-instance-dotenv"], project, env)
    assert make.returncode == 0 and not (project / ".env").exists(), make.stdout + make.stderr

    done = run(MATERIALIZE, project, env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert runs_in(Path(env["DAGSTER_HOME"])) == 1 and runs_in(first) == 0
    assert (Path(env["FRUITS_DATA_ROOT"]) / "raw_images" / "_delta_log").is_dir()

    summary = run([sys.executable, "-m", "fruits_assets.cli.summary"], project, env)
    assert f"instance  DAGSTER_HOME={env['DAGSTER_HOME']} (Sqlite storage)" in summary.stdout, summary.stdout
    assert f"data root FRUITS_DATA_ROOT={env['FRUITS_DATA_ROOT']}" in summary.stdout
    assert "not materialized yet: feature_model" in summary.stdout  # raw_images is recorded there


def test_a_dotenv_that_would_redirect_a_run_is_refused(tmp_path, sample_images, seeded_weights):
    (tmp_path / "elsewhere").mkdir()
    first, project, env = setup(tmp_path, sample_images, seeded_weights)
    (project / ".env").write_text(f"DAGSTER_HOME={first}\nFRUITS_DATA_ROOT={first / 'data'}\n")  # a user's own
    refused = run(MATERIALIZE, project, env)
    assert refused.returncode != 0
    last = refused.stderr.strip().splitlines()[-1]
    assert f"DAGSTER_HOME={env['DAGSTER_HOME']} was given, but {project}/.env replaced it" in last, refused.stderr[
        -2000:
    ]
    assert runs_in(first) == 0 and runs_in(Path(env["DAGSTER_HOME"])) == 0
    assert not (first / "data").exists() and not Path(env["FRUITS_DATA_ROOT"]).exists()
