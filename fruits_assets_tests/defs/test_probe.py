"""The feature probe's logic without Spark, and its degenerate data sets through the real asset."""

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from dagster import AssetKey, materialize

from fruits_assets.definitions import build_definitions
from fruits_assets.defs.deployments import local_resources, local_spark_config
from fruits_assets.storage import catalog
from fruits_assets.storage.tables import Lake

SPARK = dict(local_spark_config(), **{"spark.master": "local[2]"})


def publish_vectors(root, rows: pd.DataFrame, dim: int = 6) -> None:
    """Commit image_features and image_pca tables for ``rows`` (path, label, split) by hand."""
    lake = Lake(str(root))
    rng = np.random.default_rng(0)
    centers = {label: rng.normal(size=dim) * 3 for label in rows["label"].unique()}
    vectors = np.stack([centers[label] + rng.normal(size=dim) * 0.1 for label in rows["label"]]).astype(np.float32)
    for asset, column in (("image_features", "features"), ("image_pca", "pca")):
        table = pa.table(
            {
                "path": rows["path"],
                "label": rows["label"],
                "split": rows["split"],
                column: pa.array(list(vectors), type=pa.list_(pa.float32())),
            }
        )
        name = lake.write_file(asset, "part-hand0000-000000-00000.parquet", table)
        lake.commit(asset, table.schema, [name], [], None, {"fit_key": "k", "features_key": "f", "content_key": "c"})


def probe(root, images, **config):
    result = materialize(
        list(build_definitions("local").assets),
        resources=local_resources(str(root), str(images), SPARK),
        selection=[AssetKey("feature_probe")],
        run_config={"ops": {"feature_probe": {"config": config}}} if config else None,
    )
    assert result.success
    [event] = [e for e in result.get_asset_materialization_events() if e.asset_key == AssetKey("feature_probe")]
    [check] = result.get_asset_check_evaluations()
    return {k: v.value for k, v in event.materialization.metadata.items()}, check


def test_one_class_gives_a_clear_result_not_a_crash(tmp_path, sample_images):
    rows = pd.DataFrame(
        {
            "path": [f"file:/b/{i}.jpg" for i in range(8)],
            "label": ["Banana"] * 8,
            "split": ["Training"] * 6 + ["Test"] * 2,
        }
    )
    publish_vectors(tmp_path, rows)
    meta, check = probe(tmp_path, sample_images)
    assert meta["fitted"] is False and meta["classes"] == 1 and meta["eval_rows"] == 2
    assert "1 class(es) in the training rows: nothing to tell apart" in meta["note"]
    assert not check.passed and "nothing to tell apart" in check.description


def test_one_row_per_class_without_test_split(tmp_path, sample_images):
    labels = [f"Fruit {i}" for i in range(12)]
    rows = pd.DataFrame(
        {"path": [f"file:/o/{label}/1.jpg" for label in labels], "label": labels, "split": ["Training"] * 12}
    )
    publish_vectors(tmp_path, rows)
    meta, check = probe(tmp_path, sample_images)
    assert "seeded 80%/20% split" in meta["split_rule"]
    assert meta["train_rows"] + meta["eval_rows"] == 12 and meta["eval_rows"] >= 1
    # the evaluated classes were never seen in training: accuracy 0, said plainly, no crash
    assert meta["eval_classes_unseen_in_training"] == meta["eval_rows"]
    assert meta["accuracy"] == 0.0 and not check.passed and "barely separate" in check.description


def test_probe_is_reused_until_its_inputs_or_settings_change(tmp_path, sample_images):
    labels = ["Apple", "Banana", "Cherry"]
    rows = pd.DataFrame(
        {
            "path": [f"file:/r/{i}.jpg" for i in range(60)],
            "label": [labels[i % 3] for i in range(60)],
            "split": ["Training" if i < 45 else "Test" for i in range(60)],
        }
    )
    publish_vectors(tmp_path, rows)
    first, check = probe(tmp_path, sample_images)
    assert first["reused"] is False and first["accuracy"] == 1.0 and check.passed  # well-separated clusters
    again, _ = probe(tmp_path, sample_images)
    assert again["reused"] is True and again["accuracy"] == first["accuracy"]
    third, _ = probe(tmp_path, sample_images)  # a reused version can be reused again: its report came along
    assert third["reused"] is True
    assert catalog.probe_report(root=str(tmp_path))["accuracy"] == first["accuracy"]
    raw, _ = probe(tmp_path, sample_images, features="image_features", reg_param=0.01)
    assert raw["reused"] is False and raw["features"] == "image_features (6-d)"


@pytest.mark.fast
def test_missing_native_blas_is_said_where_it_makes_spark_ml_slow(monkeypatch):
    import ctypes

    from fruits_assets.spark.probe import native_blas_missing

    class Conf:
        def __init__(self, options):
            self.options = options

        def get(self, key, default=None):
            return self.options if key == "spark.driver.extraJavaOptions" else default

    class Spark:
        def __init__(self, options):
            self.conf = Conf(options)

    def no_blas(name, *args, **kwargs):
        raise OSError(f"{name}: cannot open shared object file")

    c1 = Spark("-XX:TieredStopAtLevel=1 -Dlog4j2.configurationFile=x")
    monkeypatch.setattr(ctypes, "CDLL", no_blas)
    assert "apt-get install libopenblas0-pthread" in native_blas_missing(c1)
    assert native_blas_missing(Spark("")) is None  # C2 JIT (EMR): Java's fallback is fast enough
    monkeypatch.setattr(ctypes, "CDLL", lambda name, *a, **k: object())
    assert native_blas_missing(c1) is None
