"""Expected mistakes end with one clear line naming the setting and what to do, through the real CLI."""

import subprocess
import sys
from pathlib import Path

import pytest

from fruits_assets_tests.conftest import RUN_DIR, run_env

DAGSTER = str(Path(sys.executable).with_name("dagster"))


def last_line(tmp_path, images, weights, select="raw_images", config=None, **env):
    args = [DAGSTER, "asset", "materialize", "-m", "fruits_assets.definitions", "--select", select]
    if config:
        args += ["--config-json", config]
    proc = subprocess.run(
        args, cwd=RUN_DIR, env=run_env(tmp_path, images, weights, **env), capture_output=True, text=True, timeout=600
    )
    assert proc.returncode != 0
    return (proc.stdout + proc.stderr).strip().splitlines()[-1]


@pytest.mark.parametrize(
    "case, expected",
    [
        ("missing", "fruits-assets: error: image store {images} does not exist (set FRUITS_IMAGES_DIR"),
        ("empty", "fruits-assets: error: no image files under {images} (1 other files skipped)"),
    ],
)
def test_image_store_mistakes(tmp_path, seeded_weights, case, expected):
    images = tmp_path / "images"
    if case == "empty":
        images.mkdir()
        (images / "notes.txt").write_text("no images here")
    assert last_line(tmp_path, images, seeded_weights).startswith(expected.format(images=images))


def test_bad_run_config_is_one_line_before_any_work(tmp_path, sample_images, seeded_weights):
    line = last_line(
        tmp_path,
        sample_images,
        seeded_weights,
        select="*",
        config='{"ops": {"pca_model": {"config": {"target_variance": 1.5}}}}',
    )
    assert line == (
        "fruits-assets: error: pca_model.target_variance=1.5: Input should be less than or equal to 1; "
        "allowed: float > 0.0, <= 1.0 (smallest k reaching this explained variance (0 < t <= 1))"
    )
    assert not (tmp_path / "data" / "raw_images").exists()  # nothing ran


def test_bad_spark_master_is_one_line(tmp_path, sample_images, seeded_weights):
    line = last_line(tmp_path, sample_images, seeded_weights, FRUITS_SPARK_MASTER="garbage")
    assert "FRUITS_SPARK_MASTER='garbage' is not a Spark master" in line


def test_missing_java_is_one_line(tmp_path, sample_images, seeded_weights):
    line = last_line(
        tmp_path,
        sample_images,
        seeded_weights,
        select="raw_images,feature_model,image_features",
        JAVA_HOME=str(tmp_path / "no-jdk"),
    )
    assert line.startswith("fruits-assets: error: Java 17+ is required by Spark: JAVA_HOME=")


def test_corrupt_weights_file_names_file_and_setting(tmp_path, sample_images):
    weights = tmp_path / "broken.weights.h5"
    weights.write_bytes(b"not an hdf5 file" * 64)
    line = last_line(tmp_path, sample_images, weights, select="feature_model")
    assert f"weights setting '{weights}' (FRUITS_WEIGHTS or feature_model.weights)" in line, line
    assert "is not a MobileNetV2 weights file Keras can load" in line
