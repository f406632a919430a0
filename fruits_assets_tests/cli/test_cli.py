"""The real `dagster` CLI in subprocesses, as users and `make demo` run it."""

import shutil
import subprocess
import sys
from pathlib import Path

from fruits_assets_tests.conftest import REPO, RUN_DIR, run_env

DAGSTER = str(Path(sys.executable).with_name("dagster"))


def run(args, env, timeout=600):
    return subprocess.run(args, cwd=RUN_DIR, env=env, capture_output=True, text=True, timeout=timeout)


def test_definitions_validate(tmp_path, sample_images, seeded_weights):
    proc = run(
        [DAGSTER, "definitions", "validate", "-m", "fruits_assets.definitions"],
        run_env(tmp_path, sample_images, seeded_weights),
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "Validation successful" in proc.stdout + proc.stderr


def test_asset_materialize_whole_graph_then_summary(tmp_path, sample_images, seeded_weights):
    env = run_env(tmp_path, sample_images, seeded_weights)
    proc = run([DAGSTER, "asset", "materialize", "-m", "fruits_assets.definitions", "--select", "*"], env)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-5000:]
    assert "RUN_SUCCESS" in log and "did not pass" not in log
    summary = run([sys.executable, "-m", "fruits_assets.cli.summary"], env)
    assert summary.returncode == 0, summary.stderr[-3000:]
    assert "images    100 in 10 classes" in summary.stdout
    assert "rejected 0" in summary.stdout and "reached=True" in summary.stdout
    assert "probe     test accuracy" in summary.stdout and "over 10 classes on image_pca" in summary.stdout
    assert str(tmp_path / "data" / "image_pca") in summary.stdout


def test_unknown_deployment_is_a_one_line_error(tmp_path, sample_images, seeded_weights):
    env = run_env(tmp_path, sample_images, seeded_weights, FRUITS_DEPLOYMENT="cloud")
    proc = run([DAGSTER, "definitions", "validate", "-m", "fruits_assets.definitions"], env)
    assert proc.returncode != 0
    assert "FRUITS_DEPLOYMENT='cloud' is not one of local, emr" in proc.stdout + proc.stderr


def test_sample_data_cli(tmp_path):
    proc = run(
        [sys.executable, "-m", "fruits_assets.images.sample_data", str(tmp_path / "imgs"), "--images", "24"], None
    )
    assert proc.returncode == 0, proc.stderr
    files = list((tmp_path / "imgs").rglob("*_100.jpg"))
    assert len(files) == 24
    assert {f.parent.parent.name for f in files} == {"Training", "Test"}


DG = str(Path(sys.executable).with_name("dg"))


def test_dg_check_and_launch_use_the_same_instance(tmp_path, sample_images, seeded_weights):
    """`dg` works beside `dagster`: definitions load, and a launch records into DAGSTER_HOME."""
    env = run_env(tmp_path, sample_images, seeded_weights)
    # dg finds the project from its working directory and loads the .env beside pyproject.toml
    # over the environment; a user's .env (make demo) must not redirect the test: a clean copy.
    project = tmp_path / "project"
    project.mkdir()
    shutil.copy(REPO / "pyproject.toml", project / "pyproject.toml")
    (project / "fruits_assets").symlink_to(REPO / "fruits_assets")

    def dg(*args):
        return subprocess.run([DG, *args], cwd=project, env=env, capture_output=True, text=True, timeout=600)

    check = dg("check", "defs")
    assert check.returncode == 0, check.stdout[-2000:] + check.stderr[-2000:]
    assert "All definitions loaded successfully" in check.stdout + check.stderr
    launch = dg("launch", "--assets", "raw_images")
    assert launch.returncode == 0, launch.stdout[-3000:] + launch.stderr[-3000:]
    summary = run([sys.executable, "-m", "fruits_assets.cli.summary"], env)
    assert "not materialized yet: feature_model" in summary.stdout  # raw_images was recorded there


def test_sample_data_has_fruits_360_shape_help_and_one_line_errors(tmp_path):
    """--classes stopped at 10 (--classes 40 was a ValueError traceback); --help explained nothing."""
    proc = run(
        [
            sys.executable,
            "-m",
            "fruits_assets.images.sample_data",
            str(tmp_path / "all"),
            "--classes",
            "131",
            "--images",
            "262",
        ],
        None,
    )
    assert proc.returncode == 0, proc.stderr
    labels = {p.name for p in (tmp_path / "all" / "Training").iterdir()}
    assert len(labels) == 131 and "Clémentine" in labels and "Apple Red Yellow 2" in labels
    assert {p.name for p in (tmp_path / "all").iterdir()} == {"Training", "Test"}
    bad = run([sys.executable, "-m", "fruits_assets.images.sample_data", str(tmp_path / "x"), "--classes", "140"], None)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    last = bad.stderr.strip().splitlines()[-1]
    assert last.endswith("--classes must be between 1 and 131 (Fruits-360 has 131), got 140")
    usage = run([sys.executable, "-m", "fruits_assets.images.sample_data", "--help"], None)
    assert "--classes 131 --images 90483" in usage.stdout and "--test-fraction" in usage.stdout
