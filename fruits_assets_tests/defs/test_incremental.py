"""Incremental runs on real files, real Spark, real LiteRT: only what changed is featurized, nothing
current is rebuilt, failures leave the last version, and the sensor requests a run exactly when
the images changed."""

import io
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from dagster import (
    AssetKey,
    DagsterInstance,
    SensorResult,
    SkipReason,
    build_sensor_context,
    materialize,
)
from dagster._core.definitions.data_version import DATA_VERSION_TAG
from PIL import Image

from fruits_assets import names
from fruits_assets.definitions import build_definitions
from fruits_assets.defs import features
from fruits_assets.defs.automation import images_sensor
from fruits_assets.defs.deployments import local_resources, local_spark_config
from fruits_assets.defs.resources import ImageStore
from fruits_assets.images import sample_data
from fruits_assets.names import IMAGE_STORE
from fruits_assets.storage import catalog
from fruits_assets.storage.tables import Lake

DATA = [AssetKey(a) for a in names.DATA_ASSETS]
SPARK = dict(local_spark_config(), **{"spark.master": "local[2]"})
N = 40


def jpeg(color) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (100, 100), color).save(buf, "JPEG")
    return buf.getvalue()


def meta(result, asset):
    [event] = [e for e in result.get_asset_materialization_events() if e.asset_key == AssetKey(asset)]
    return {k: v.value for k, v in event.materialization.metadata.items()}


def features_by_path(store):
    df = catalog.load("image_features", root=store.root)
    return {p: np.asarray(v, dtype=np.float32) for p, v in zip(df["path"], df["features"])}


@pytest.fixture(scope="module")
def world(tmp_path_factory, seeded_weights):
    root = tmp_path_factory.mktemp("incr") / "images"
    sample_data.generate(root, N)
    bad = root / "Training" / "Banana"
    (bad / "broken_100.jpg").write_bytes(jpeg((10, 200, 10))[:300])  # will be fixed
    (bad / "still_broken_100.jpg").write_bytes(b"not an image" * 20)  # stays a reject
    data = tmp_path_factory.mktemp("incr-data")
    resources = local_resources(str(data), str(root), SPARK)
    config = {"ops": {"feature_model": {"config": {"weights": str(seeded_weights)}}}}

    def run(run_config=None, **kw):
        kw.setdefault("selection", DATA)  # the report's notebook is tested with the graph (test_graph.py)
        return materialize(
            list(build_definitions("local").assets), resources=resources, run_config=run_config or config, **kw
        )

    first = run()
    assert first.success
    return root, Lake(str(data)), run, first


def test_first_run_computes_everything(world):
    _, _, _, first = world
    m = meta(first, "image_features")
    assert (m["images_computed"], m["images_reused"], m["images_removed"]) == (N + 2, 0, 0)
    assert m["refresh"] == "first version"


def test_changes_are_featurized_and_the_rest_reused_bit_for_bit(world):
    root, store, run, _ = world
    before = features_by_path(store)
    committed_before = {f.path: f.size for f in store.snapshot("image_features").files}
    inodes = {p: os.stat(store.table_uri("image_features") + "/" + p).st_ino for p in committed_before}
    files = sorted(root.rglob("*_100.jpg"))
    kiwi = root / "Training" / "Kiwi"
    for i in range(3):  # 3 new images
        (kiwi / f"new{i}_100.jpg").write_bytes(jpeg((40 * i, 90, 200)))
    # Both in one committed file, so that the other files hold no change and must stay untouched.
    one_file = pd.read_parquet(store.table_uri("image_features") + "/" + sorted(committed_before)[0])
    changed, deleted = (Path(p[len("file:") :]) for p in sorted(one_file["path"])[:2])
    assert changed in files and deleted in files
    changed.write_bytes(jpeg((250, 250, 0)))  # same path, new bytes
    deleted.unlink()  # gone
    (root / "Training" / "Banana" / "broken_100.jpg").write_bytes(jpeg((10, 200, 10)))  # a reject fixed
    result = run()
    assert result.success
    m = meta(result, "image_features")
    assert m["refresh"] == "incremental"
    assert m["images_computed"] == 3 + 1 + 1
    assert m["images_reused"] == (N - 2) + 1  # untouched features + the reject still broken
    assert m["images_removed"] == 1
    after = features_by_path(store)
    assert len(after) == N - 1 + 3 + 1
    untouched = set(before) - {f"file:{changed}", f"file:{deleted}"}
    assert all(np.array_equal(before[p], after[p]) for p in untouched)  # bit-identical vectors
    assert f"file:{deleted}" not in after and not np.array_equal(before[f"file:{changed}"], after[f"file:{changed}"])
    rejects = catalog.load("image_rejects", root=store.root)
    assert [Path(p).name for p in rejects["path"]] == ["still_broken_100.jpg"]
    assert meta(result, "pca_model")["reused"] is False and meta(result, "image_pca")["reused"] is False
    assert meta(result, "feature_probe")["reused"] is False
    assert meta(result, "image_pca")["dagster/row_count"] == len(after)
    # Only what changed was committed: files holding no changed image stayed where they were (same
    # file, no copy, no link), the two holding the changed and the deleted image were replaced.
    committed_after = {f.path: f.size for f in store.snapshot("image_features").files}
    kept = set(committed_before) & set(committed_after)
    assert kept and len(set(committed_before) - kept) == m["files_removed"] == 1
    assert m["files_untouched"] == len(kept)
    assert all(os.stat(store.table_uri("image_features") + "/" + p).st_ino == inodes[p] for p in kept)


def test_no_change_rebuilds_nothing(world):
    _, store, run, _ = world
    pca_before = catalog.load("image_pca", root=store.root).sort_values("path", ignore_index=True)
    result = run()
    assert result.success
    m = meta(result, "image_features")
    assert (m["images_computed"], m["images_removed"]) == (0, 0)
    assert meta(result, "feature_model")["reused"] is True
    assert meta(result, "pca_model")["reused"] is True and meta(result, "image_pca")["reused"] is True
    assert meta(result, "feature_probe")["reused"] is True
    pca_after = catalog.load("image_pca", root=store.root).sort_values("path", ignore_index=True)
    assert pca_before["path"].tolist() == pca_after["path"].tolist()
    assert all(np.array_equal(a, b) for a, b in zip(pca_before["pca"], pca_after["pca"]))


def test_failure_half_way_keeps_the_last_version_and_the_next_run_is_right(world, monkeypatch):
    root, store, run, _ = world
    before = {a: store.latest_version(a) for a in ("image_features", "image_rejects", "raw_images")}
    for i in range(2):
        (root / "Test" / "Kiwi" / f"late{i}_100.jpg").write_bytes(jpeg((90, 30 * i, 30)))

    def killed(*args, **kwargs):  # the tasks die after the carried rows were staged
        raise RuntimeError("executor lost: task killed")

    monkeypatch.setattr(features, "featurize", killed)
    files_before = sorted((Path(store.root) / "image_features").glob("*.parquet"))
    failed = run(raise_on_error=False)
    assert not failed.success
    # The failed step committed nothing and deleted what it wrote (the rows it had rewritten);
    # raw_images' own step succeeded and committed its new listing.
    assert {a: store.latest_version(a) for a in before} == {**before, "raw_images": before["raw_images"] + 1}
    assert sorted((Path(store.root) / "image_features").glob("*.parquet")) == files_before
    monkeypatch.undo()
    result = run()
    assert result.success
    m = meta(result, "image_features")
    assert (m["images_computed"], m["images_removed"]) == (2, 0)


def test_full_refresh_and_model_change_recompute_everything(world):
    root, store, _, _ = world
    n_images = len(catalog.load("raw_images", root=store.root))
    resources = local_resources(store.root, str(root), SPARK)
    every = list(build_definitions("local").assets)
    full = materialize(
        every,
        resources=resources,
        selection=[AssetKey("image_features"), AssetKey("image_rejects")],
        run_config={"ops": {"image_features": {"config": {"full_refresh": True}}}},
    )
    m = meta(full, "image_features")
    assert (m["images_computed"], m["refresh"]) == (n_images, "full refresh requested")
    other = materialize(
        every,
        resources=resources,
        selection=[AssetKey("feature_model"), AssetKey("image_features"), AssetKey("image_rejects")],
        run_config={"ops": {"feature_model": {"config": {"weights": "random"}}}},
    )
    m = meta(other, "image_features")
    assert m["images_computed"] == n_images and m["refresh"].startswith("the model changed")


def test_projection_follows_features_materialized_alone(world):
    """image_pca with an unchanged model must still re-project when image_features changed since."""
    root, store, _, _ = world
    (root / "Test" / "Kiwi" / "solo_100.jpg").write_bytes(jpeg((5, 5, 250)))
    every = list(build_definitions("local").assets)
    resources = local_resources(store.root, str(root), SPARK)
    first = materialize(
        every,
        resources=resources,
        selection=[AssetKey("raw_images"), AssetKey("image_features"), AssetKey("image_rejects")],
    )
    assert meta(first, "image_features")["images_computed"] == 1
    alone = materialize(every, resources=resources, selection=[AssetKey("image_pca")])
    m = meta(alone, "image_pca")
    assert m["reused"] is False
    assert m["dagster/row_count"] == len(catalog.load("image_features", root=store.root))


# ---------------------------------------------------------------- the sensor


def tick(images: ImageStore, cursor, instance):
    context = build_sensor_context(cursor=cursor, instance=instance, resources={"images": images})
    result = images_sensor()(context)
    return result, context.cursor


def observed(result) -> str:
    """The data version the sensor recorded for image_store (it requests no run itself)."""
    assert isinstance(result, SensorResult) and not result.run_requests
    (event,) = result.asset_events
    assert event.asset_key == AssetKey(IMAGE_STORE)
    return event.tags[DATA_VERSION_TAG]


def sensor_sequence(images: ImageStore, add, change, remove):
    with DagsterInstance.ephemeral() as instance:
        result, cursor = tick(images, None, instance)
        assert isinstance(result, SkipReason) and "no images" in result.skip_message
        add("a")
        result, cursor = tick(images, cursor, instance)
        first = observed(result)
        again, cursor2 = tick(images, cursor, instance)
        assert isinstance(again, SkipReason) and cursor2 == cursor  # never twice for one change
        for mutate in (lambda: add("b"), change, remove):
            mutate()
            result, new_cursor = tick(images, cursor, instance)
            assert observed(result) not in (first, cursor)
            assert new_cursor != cursor
            cursor = new_cursor
            assert isinstance(tick(images, cursor, instance)[0], SkipReason)


def test_sensor_on_a_local_folder(tmp_path):
    root = tmp_path / "images"
    root.mkdir()
    folder = root / "Training" / "Kiwi"

    def add(name):
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{name}.jpg").write_bytes(jpeg((1, 2, 3)))

    def change():
        path = folder / "a.jpg"
        path.write_bytes(jpeg((200, 2, 3)) + b"\0")
        os.utime(path, ns=(time.time_ns(), time.time_ns() + 10**9))

    sensor_sequence(ImageStore(uri=str(root)), add, change, lambda: (folder / "b.jpg").unlink())


def test_sensor_on_moto_s3(monkeypatch):
    from fruits_assets_tests.emr_harness.harness import MotoAws

    with MotoAws("eu-west-3") as aws:
        for key, value in aws.env.items():  # test credentials for moto
            monkeypatch.setenv(key, value)
        s3 = aws.client("s3")
        bucket = "sensor-test-images"
        s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": "eu-west-3"})
        s3.put_object(Bucket=bucket, Key="raw/", Body=b"")  # the prefix exists, no image yet
        put = lambda name, color=(1, 2, 3): s3.put_object(  # noqa: E731
            Bucket=bucket, Key=f"raw/Training/Kiwi/{name}.jpg", Body=jpeg(color)
        )
        images = ImageStore(uri=f"s3://{bucket}/raw", endpoint_url=aws.endpoint, region="eu-west-3")
        sensor_sequence(
            images,
            put,
            lambda: put("a", (200, 9, 9)),
            lambda: s3.delete_object(Bucket=bucket, Key="raw/Training/Kiwi/b.jpg"),
        )
