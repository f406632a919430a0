"""feature_model.precision on the real graph (real Keras conversion, Spark, LiteRT): int8 is
calibrated on the inventory's images, a switch of precision recomputes every feature row once, and a
fresh data root takes a conversion this machine already made from the cache."""

import json

import numpy as np
from dagster import AssetKey, materialize

from fruits_assets.analysis import calibration
from fruits_assets.definitions import build_definitions
from fruits_assets.defs.deployments import local_resources, local_spark_config
from fruits_assets.images.layout import relative_image_path
from fruits_assets.model.litert import LiteRTFeatureExtractor
from fruits_assets.spark.featurize import spark_path_root
from fruits_assets.storage import catalog

SPARK = dict(local_spark_config(), **{"spark.master": "local[2]"})
FEATURES = [AssetKey(a) for a in ("raw_images", "feature_model", "image_features", "image_rejects")]
CALIBRATION_IMAGES = 16  # of the 100 sample images: the conversion stays short


def meta(result, asset):
    [event] = [e for e in result.get_asset_materialization_events() if e.asset_key == AssetKey(asset)]
    return {k: v.value for k, v in event.materialization.metadata.items()}


def run(data, images, weights, precision, selection=FEATURES):
    config = {"ops": {"feature_model": {"config": {"weights": str(weights), "precision": precision}}}}
    return materialize(
        list(build_definitions("local").assets),
        resources=local_resources(str(data), str(images), SPARK),
        run_config=config,
        selection=selection,
    )


def test_int8_switch_recomputes_once_and_a_fresh_data_root_reuses_the_conversion(
    tmp_path, sample_images, seeded_weights, model_cache, monkeypatch
):
    monkeypatch.setenv("FRUITS_CALIBRATION_IMAGES", str(CALIBRATION_IMAGES))
    data = tmp_path / "data"
    fp32 = run(data, sample_images, seeded_weights, "fp32")
    assert meta(fp32, "feature_model")["precision"] == "fp32" and meta(fp32, "image_features")["images_computed"] == 100
    fp32_rows = catalog.load("image_features", root=str(data)).set_index("path")["features"]

    int8 = run(data, sample_images, seeded_weights, "int8")
    model = meta(int8, "feature_model")
    assert (model["precision"], model["reused"], model["conversion_cache"]) == ("int8", False, "stored")
    tflite, provenance = catalog.load("feature_model", root=str(data))
    recorded = provenance["calibration"]
    # The seeded sample of the inventory, by path relative to the store, each image's bytes hashed.
    root = spark_path_root(str(sample_images))
    inventory = catalog.load("raw_images", root=str(data))
    ranked = calibration.ranking(relative_image_path(p, root) for p in inventory["path"])
    assert [e["path"] for e in recorded["sample"]] == sorted(ranked[:CALIBRATION_IMAGES])
    assert recorded["digest"] == calibration.digest((e["path"], e["sha256"]) for e in recorded["sample"])
    assert provenance["precision"] == "int8" and provenance["quantization"]["float_layers"] == ["expanded_conv_"]
    assert provenance["conversion"]["cache"] == "stored" and provenance["conversion"]["seconds"] > 0
    # Every row recomputed with the int8 model: the table's vectors are what LiteRT gives with it.
    features = meta(int8, "image_features")
    assert (features["images_computed"], features["precision"]) == (100, "int8")
    assert features["refresh"].startswith("the model changed")
    rows = catalog.load("image_features", root=str(data)).set_index("path")["features"]
    paths = sorted(rows.index)[:8]
    from fruits_assets.images.decode import load_rgb

    pixels = np.stack([load_rgb(open(p.removeprefix("file:"), "rb").read()) for p in paths])
    expected = LiteRTFeatureExtractor(tflite, batch_size=1)(pixels)
    np.testing.assert_allclose(np.stack(rows[paths].to_numpy()), expected, rtol=1e-5, atol=1e-6)
    ours, theirs = np.stack(rows[paths].to_numpy()), np.stack(fp32_rows[paths].to_numpy())
    cosine = (ours * theirs).sum(1) / (np.linalg.norm(ours, axis=1) * np.linalg.norm(theirs, axis=1))
    assert 0.9 < cosine.min() and cosine.max() < 0.99999  # int8 features: close to fp32, not fp32's

    again = run(data, sample_images, seeded_weights, "int8")  # the switch cost one recompute only
    assert meta(again, "feature_model")["reused"] is True and meta(again, "image_features")["images_computed"] == 0

    fresh = tmp_path / "fresh"  # a new data root, the same weights and images: no conversion
    cached = run(fresh, sample_images, seeded_weights, "int8", FEATURES[:2])
    model = meta(cached, "feature_model")
    assert (model["conversion_cache"], model["reused"]) == ("reused", False)
    assert model["build_seconds"] < provenance["conversion"]["seconds"]
    cached_bytes, cached_provenance = catalog.load("feature_model", root=str(fresh))
    assert cached_bytes == tflite and cached_provenance["conversion"]["cache"] == "reused"
    entry = model_cache / provenance["build_key"]
    assert json.loads((entry / "provenance.json").read_text())["model_sha256"] == provenance["model_sha256"]
