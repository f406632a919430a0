"""Expected mistakes end in one line that names the cause and the fix, through the real `dagster`
CLI on an instance made by `fruits-assets home init` (as `make` does): nothing above that line
but the run's own progress lines at INFO, no trace, the cause said once."""

import subprocess
import sys
from pathlib import Path

import pytest

from fruits_assets_tests.conftest import RUN_DIR, run_env

DAGSTER = str(Path(sys.executable).with_name("dagster"))
CLI = str(Path(sys.executable).with_name("fruits-assets"))
PREFIX = "fruits-assets: error: "


def failing_run(tmp_path, images, weights, select="raw_images", config=None, **env) -> list[str]:
    """The lines a failed `dagster asset materialize` prints (stdout and stderr)."""
    environment = run_env(tmp_path, images, weights, PYTHONWARNINGS="ignore::FutureWarning", **env)
    subprocess.run([CLI, "home", "init"], env=environment, check=True, capture_output=True)
    args = [DAGSTER, "asset", "materialize", "-m", "fruits_assets.definitions", "--select", select]
    if config:
        args += ["--config-json", config]
    proc = subprocess.run(args, cwd=RUN_DIR, env=environment, capture_output=True, text=True, timeout=600)
    assert proc.returncode != 0
    return (proc.stdout + proc.stderr).strip().splitlines()


def assert_one_line(lines: list[str], expected: str, at_most_above: int = 0) -> None:
    """The mistake is the last line, said once; above it only progress lines (INFO or WARNING)."""
    *above, last = lines
    assert last.startswith(PREFIX + expected), lines
    assert len(above) <= at_most_above, lines
    for line in above:
        assert " - INFO - " in line or " - WARNING - " in line, lines
        assert "Traceback" not in line and "error:" not in line and last[len(PREFIX) :] not in line, lines


@pytest.mark.parametrize(
    "case, expected, above",
    [
        ("missing", "image store {images} does not exist (set FRUITS_IMAGES_DIR", 0),
        ("empty", "no image files under {images} (1 other files skipped)", 1),  # + the skipped-files warning
    ],
)
def test_image_store_mistakes(tmp_path, seeded_weights, case, expected, above):
    images = tmp_path / "images"
    if case == "empty":
        images.mkdir()
        (images / "notes.txt").write_text("no images here")
    lines = failing_run(tmp_path, images, seeded_weights)
    assert_one_line(lines, expected.format(images=images), above)
    assert "check FRUITS_IMAGES_DIR" in lines[-1] or case == "missing"


@pytest.mark.parametrize(
    "config, expected",
    [
        (
            '{"ops": {"pca_model": {"config": {"target_variance": 1.5}}}}',
            "pca_model.target_variance=1.5: Input should be less than or equal to 1; "
            "allowed: float > 0.0, <= 1.0 (smallest k reaching this explained variance (0 < t <= 1))",
        ),
        (
            '{"ops": {"image_features": {"config": {"batch_size": 0}}}}',
            "image_features.batch_size=0: Input should be greater than or equal to 1; allowed: int >= 1, <= 256",
        ),
        (  # Dagster itself refuses an unknown field, before any of the project's code runs
            '{"ops": {"image_features": {"config": {"batch_sise": 4}}}}',
            "run config ops.image_features.config: unknown field 'batch_sise'; allowed: batch_size, arrow_batch_rows",
        ),
    ],
)
def test_bad_run_config_is_one_line_before_any_work(tmp_path, sample_images, seeded_weights, config, expected):
    lines = failing_run(tmp_path, sample_images, seeded_weights, select="*", config=config)
    assert_one_line(lines, expected)
    assert not (tmp_path / "data" / "raw_images").exists()  # nothing ran


def test_missing_upstream_names_the_selection_that_works(tmp_path, sample_images, seeded_weights):
    lines = failing_run(tmp_path, sample_images, seeded_weights, select="image_pca")
    assert_one_line(lines, "asset 'image_features' has no committed table under", 1)
    assert lines[-1].endswith(
        "materialize it first, e.g. with --select '+image_pca' (image_pca and everything upstream)"
    )


def test_bad_spark_master_is_one_line(tmp_path, sample_images, seeded_weights):
    lines = failing_run(tmp_path, sample_images, seeded_weights, FRUITS_SPARK_MASTER="garbage")
    assert_one_line(lines, "FRUITS_SPARK_MASTER='garbage' is not a Spark master")


def test_missing_java_is_one_line(tmp_path, sample_images, seeded_weights):
    lines = failing_run(
        tmp_path,
        sample_images,
        seeded_weights,
        select="raw_images,feature_model,image_features",
        JAVA_HOME=str(tmp_path / "no-jdk"),
    )
    # above it: the progress of the steps that ran before Spark was needed
    assert_one_line(lines, "Java 17+ is required by Spark: JAVA_HOME=", 4)


def test_corrupt_weights_file_names_file_and_setting(tmp_path, sample_images):
    weights = tmp_path / "broken.weights.h5"
    weights.write_bytes(b"not an hdf5 file" * 64)
    lines = failing_run(tmp_path, sample_images, weights, select="feature_model")
    assert_one_line(lines, f"weights setting '{weights}' (FRUITS_WEIGHTS or feature_model.weights)")
    assert "is not a MobileNetV2 weights file Keras can load" in lines[-1]
