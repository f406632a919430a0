"""image featurization on real local Spark with real LiteRT, bad files included."""

import subprocess
import sys

import numpy as np
import pytest

from fruits_assets.featurize import (
    FeaturizeOptions,
    featurize,
    featurize_batches,
    partition_settings,
    read_images,
    spark_path_root,
    with_empty_files,
)
from fruits_assets.keras_model import build_model, to_tflite
from fruits_assets.resources import ImageStore


@pytest.fixture(scope="module")
def model_bytes(seeded_weights):
    return to_tflite(build_model(str(seeded_weights)).model)


@pytest.fixture(scope="module")
def featurized(spark, dirty_images, model_bytes):
    root, _ = dirty_images
    df = featurize(spark, read_images(spark, str(root)), spark_path_root(str(root)), model_bytes,
                   FeaturizeOptions(batch_size=16, arrow_batch_rows=32))
    return with_empty_files(spark, df, ImageStore(uri=str(root)).inventory()).toPandas()


def test_every_file_gets_features_or_a_reason(featurized, dirty_images):
    root, bad = dirty_images
    assert len(featurized) == 100 + len(bad)
    rejected = featurized[featurized["error"].notna()]
    assert len(rejected) == len(bad)
    for rel, reason in bad.items():
        row = rejected[rejected["path"] == f"file:{root}/{rel}"]
        assert len(row) == 1 and row["error"].iloc[0].startswith(reason), (rel, row)
        assert row["features"].iloc[0] is None  # never a zero vector
        assert row["finite"].iloc[0] is None


def test_features_labels_and_splits(featurized):
    ok = featurized[featurized["error"].isna()]
    matrix = np.stack(ok["features"].to_numpy())
    assert matrix.shape == (100, 1280) and matrix.dtype == np.float32
    assert np.isfinite(matrix).all() and matrix.std(axis=0).mean() > 1e-2
    assert ok["finite"].all()
    assert not (np.abs(matrix).sum(axis=1) == 0).any()
    assert {"Apple Braeburn", "Clémentine", "Grape Blue"} <= set(ok["label"])
    assert set(ok["split"]) == {"Training", "Test"}


def test_same_image_same_features_across_batches(spark, sample_images, model_bytes):
    """Batch composition and padding must not change an image's features."""
    root = str(sample_images)
    a = featurize(spark, read_images(spark, root), spark_path_root(root), model_bytes,
                  FeaturizeOptions(batch_size=7, arrow_batch_rows=13)).toPandas().sort_values("path")
    b = featurize(spark, read_images(spark, root), spark_path_root(root), model_bytes,
                  FeaturizeOptions(batch_size=32, arrow_batch_rows=100)).toPandas().sort_values("path")
    np.testing.assert_allclose(np.stack(a["features"]), np.stack(b["features"]), atol=1e-4)


def test_worker_modules_do_not_import_tensorflow_or_dagster():
    code = ("import sys, fruits_assets.featurize, fruits_assets.litert_runtime, fruits_assets.decode;"
            "bad = [m for m in ('tensorflow', 'keras', 'dagster') if m in sys.modules]; print(bad);"
            "sys.exit(1 if bad else 0)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_partition_settings_follow_data_size():
    small = partition_settings(n_images=4000, total_bytes=4000 * 5000, parallelism=2)
    assert small["spark.sql.files.minPartitionNum"] == "2"
    assert int(small["spark.sql.files.openCostInBytes"]) == 5000
    big = partition_settings(n_images=90_000, total_bytes=90_000 * 5000, parallelism=8)
    assert big["spark.sql.files.minPartitionNum"] == str(8 * 4)


def test_non_finite_features_are_flagged_not_hidden(tmp_path):
    """A model producing NaN for dark images: the row keeps its NaN features, flagged finite=False
    (what the features_finite check counts), and bright images stay finite."""
    import io

    import keras
    import pandas as pd
    from PIL import Image

    pixels = keras.Input(shape=(224, 224, 3))
    mean = keras.layers.GlobalAveragePooling2D()(pixels)  # in [-1, 1] after preprocessing
    model = keras.Model(pixels, keras.layers.Lambda(lambda t: keras.ops.sqrt(t))(mean))
    blobs = []
    for value in (0, 255):
        buf = io.BytesIO()
        Image.new("RGB", (100, 100), (value,) * 3).save(buf, format="JPEG")
        blobs.append(buf.getvalue())
    paths = pd.Series(["/r/Training/Dark/1_100.jpg", "/r/Training/Bright/1_100.jpg"])
    [out] = featurize_batches(iter([(paths, pd.Series(blobs))]), "/r", to_tflite(model), "nan-model",
                              FeaturizeOptions())
    assert out["error"].isna().all()
    assert out["finite"].tolist() == [False, True]
    assert np.isnan(out["features"][0]).all() and np.isfinite(out["features"][1]).all()
