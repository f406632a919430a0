"""Image featurization on real local Spark with real LiteRT, bad files included; S3 on moto."""

import io
import subprocess
import sys

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from fruits_assets.defs.resources import ImageStore
from fruits_assets.model.keras_build import build_model, to_tflite
from fruits_assets.model.litert import model_digest
from fruits_assets.spark.featurize import (
    FeaturizeOptions,
    FeaturizeStats,
    featurize,
    featurize_partition,
    partition_count,
    spark_path_root,
)
from fruits_assets.storage.fs import Location
from fruits_assets.storage.parts import read_back


@pytest.fixture(scope="module")
def model_bytes(seeded_weights):
    return to_tflite(build_model(str(seeded_weights)).model)


def outcome(features: pd.DataFrame, rejects: pd.DataFrame) -> pd.DataFrame:
    """One row per image from what the tasks wrote: features (finite, dims) or the rejection."""
    ok = features[["path", "label", "split"]].assign(
        error=None,
        finite=[bool(np.isfinite(v).all()) for v in features["features"]],
        dims=[len(v) for v in features["features"]],
    )
    bad = rejects[["path", "label", "split", "bytes", "error"]].assign(finite=None, dims=None)
    return pd.concat([ok, bad], ignore_index=True)


def run_featurize(spark, root, out, model_bytes, options=FeaturizeOptions(), inventory=None, with_stats=False):
    inventory = ImageStore(uri=str(root)).scan().images if inventory is None else inventory
    rejects_dir = out.parent / f"{out.name}-rejects"
    stats = featurize(
        spark,
        inventory,
        spark_path_root(str(root)),
        str(out / "part"),
        model_bytes,
        options,
        rejects_prefix=str(rejects_dir / "part"),
    )
    features, rejects = pq.read_table(str(out)).to_pandas(), pq.read_table(str(rejects_dir)).to_pandas()
    summary = outcome(features, rejects)
    return (summary, features, stats) if with_stats else (summary, features)


@pytest.fixture(scope="module")
def featurized(spark, dirty_images, model_bytes, tmp_path_factory):
    root, _ = dirty_images
    out = tmp_path_factory.mktemp("features") / "staged"
    summary, features, stats = run_featurize(
        spark,
        root,
        out,
        model_bytes,
        FeaturizeOptions(batch_size=16, arrow_batch_rows=32, row_group_rows=40),
        with_stats=True,
    )
    return summary, features, out, stats


def test_every_file_gets_features_or_a_reason(featurized, dirty_images):
    summary, features, _, _ = featurized
    root, bad = dirty_images
    assert len(summary) == 100 + len(bad) and summary["path"].is_unique
    rejected = summary[summary["error"].notna()]
    assert len(rejected) == len(bad)
    for rel, reason in bad.items():
        row = rejected[rejected["path"] == f"file:{root}/{rel}"]
        assert len(row) == 1 and row["error"].iloc[0].startswith(reason), (rel, row)
        assert row["finite"].isna().all() and row["dims"].isna().all()
    # never a zero vector: a rejected image has no row in the features parquet at all
    assert set(features["path"]) == set(summary.loc[summary["error"].isna(), "path"])
    assert (rejected["bytes"] == [(root / r.split(f"{root}/", 1)[1]).stat().st_size for r in rejected["path"]]).all()


def test_features_labels_and_splits(featurized):
    summary, features, _, _ = featurized
    matrix = np.stack(features["features"].to_numpy())
    assert matrix.shape == (100, 1280) and matrix.dtype == np.float32
    assert np.isfinite(matrix).all() and matrix.std(axis=0).mean() > 1e-2
    assert not (np.abs(matrix).sum(axis=1) == 0).any()
    ok = summary[summary["error"].isna()]
    assert ok["finite"].all() and (ok["dims"] == 1280).all()
    assert {"Apple Braeburn", "Clémentine", "Grape Blue"} <= set(features["label"])
    assert set(features["split"]) == {"Training", "Test"}
    merged = features.merge(ok, on="path", suffixes=("", "_summary"))
    assert (merged["label"] == merged["label_summary"]).all() and (merged["split"] == merged["split_summary"]).all()


def test_parts_are_spark_readable_and_counted_from_footers(spark, featurized):
    _, _, out, _ = featurized
    df = spark.read.parquet(str(out))
    assert df.schema.simpleString() == (
        "struct<path:string,label:string,split:string,features:array<float>,fingerprint:string>"
    )
    assert df.count() == 100
    files = sorted(p.name for p in out.iterdir())
    assert files == [f"part-{i:05d}.parquet" for i in range(len(files))]  # <prefix>-<task>.parquet
    written = read_back([str(out / f) for f in files], 30)
    assert (written.rows, written.values) == (100, 100 * 1280)
    assert pq.ParquetFile(out / files[0]).metadata.num_row_groups >= 1
    sample = written.sample
    assert 0 < len(sample) <= 30 and sample.shape[1] == 1280


def test_same_image_same_features_across_batches(spark, sample_images, model_bytes, tmp_path):
    """Batch composition, padding and row groups must not change an image's features."""
    _, a = run_featurize(
        spark,
        sample_images,
        tmp_path / "a",
        model_bytes,
        FeaturizeOptions(batch_size=7, arrow_batch_rows=13, row_group_rows=5),
    )
    _, b = run_featurize(
        spark, sample_images, tmp_path / "b", model_bytes, FeaturizeOptions(batch_size=32, arrow_batch_rows=100)
    )
    a, b = a.sort_values("path"), b.sort_values("path")
    assert list(a["path"]) == list(b["path"]) and len(a) == 100
    np.testing.assert_allclose(np.stack(a["features"]), np.stack(b["features"]), atol=1e-4)


def test_file_gone_after_inventory_is_a_reject(spark, tmp_path, model_bytes):
    root = tmp_path / "images"
    for name in ("1_100.jpg", "2_100.jpg"):
        (root / "Training" / "Kiwi").mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (100, 100), (90, 160, 40)).save(root / "Training" / "Kiwi" / name)
    inventory = ImageStore(uri=str(root)).scan().images
    (root / "Training" / "Kiwi" / "2_100.jpg").unlink()
    summary, features = run_featurize(spark, root, tmp_path / "out", model_bytes, inventory=inventory)
    gone = summary[summary["path"].str.endswith("2_100.jpg")]
    assert gone["error"].iloc[0].startswith("unreadable: FileNotFoundError")
    assert list(features["path"]) == [f"file:{root}/Training/Kiwi/1_100.jpg"]


def test_worker_modules_do_not_import_tensorflow_or_dagster():
    code = (
        "import sys, fruits_assets.spark.featurize, fruits_assets.model.litert, fruits_assets.images.decode;"
        "bad = [m for m in ('tensorflow', 'keras', 'dagster', 'pyspark') if m in sys.modules]; print(bad);"
        "sys.exit(1 if bad else 0)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_partition_count_follows_data_size():
    assert partition_count(4000, 2) == 2
    assert partition_count(3, 8) == 3
    assert partition_count(90_000, 8) == 8 * 4  # capped at 4 waves
    assert partition_count(20_000, 8) == 8  # tasks of >= 2,000 images


def inventory_batch(paths, sizes):
    return iter([pa.RecordBatch.from_pydict({"path": paths, "bytes": sizes, "fingerprint": ["f"] * len(paths)})])


def test_non_finite_features_are_flagged_not_hidden(tmp_path):
    """A model producing NaN for dark images: the row keeps its NaN features, flagged finite=False
    (what the features_finite check counts), and bright images stay finite."""
    import keras

    pixels = keras.Input(shape=(224, 224, 3))
    mean = keras.layers.GlobalAveragePooling2D()(pixels)  # in [-1, 1] after preprocessing
    model = to_tflite(keras.Model(pixels, keras.layers.Lambda(lambda t: keras.ops.sqrt(t))(mean)))
    paths = []
    for value, label in ((0, "Dark"), (255, "Bright")):
        path = tmp_path / "r" / "Training" / label / "1_100.jpg"
        path.parent.mkdir(parents=True)
        Image.new("RGB", (100, 100), (value,) * 3).save(path, format="JPEG")
        paths.append(f"file:{path}")
    part = tmp_path / "out" / "part-00000.parquet"
    [stats] = featurize_partition(
        inventory_batch(paths, [1, 1]),
        str(part),
        f"file:{tmp_path}/r",
        model,
        model_digest(model),
        FeaturizeOptions(),
        Location(),
        Location(),
    )
    stats = FeaturizeStats.from_json(stats.column("stats")[0].as_py())
    assert (stats.ok, stats.rejected, stats.non_finite) == (2, 0, 1)
    features = pq.read_table(part).to_pandas()
    assert np.isnan(features["features"][0]).all() and np.isfinite(features["features"][1]).all()


def test_reads_and_writes_s3(tmp_path, model_bytes, monkeypatch):
    """Workers read images from S3 concurrently and write their part to S3 (moto's real server)."""
    from fruits_assets_tests.emr_harness.harness import MotoAws

    with MotoAws() as moto:
        for key, value in moto.env.items():
            monkeypatch.setenv(key, value)
        s3 = moto.client("s3")
        s3.create_bucket(Bucket="imgs", CreateBucketConfiguration={"LocationConstraint": moto.region})
        paths = []
        for i, label in enumerate(["Apple Braeburn", "Kiwi", "Apple Braeburn"]):
            buf = io.BytesIO()
            Image.new("RGB", (100, 100), (40 * i, 200, 90)).save(buf, format="JPEG")
            key = f"raw/Test/{label}/{i}_100.jpg"
            s3.put_object(Bucket="imgs", Key=key, Body=buf.getvalue())
            paths.append(f"s3://imgs/{key}")
        paths.append("s3://imgs/raw/Test/Kiwi/missing_100.jpg")
        at = Location(moto.endpoint, moto.region)
        [stats] = featurize_partition(
            inventory_batch(paths, [1, 1, 1, 1]),
            "s3://imgs/staged/part-00003.parquet",
            "s3://imgs/raw",
            model_bytes,
            model_digest(model_bytes),
            FeaturizeOptions(read_threads=4),
            at,
            at,
            "s3://imgs/rejects/part-00003.parquet",
        )
        stats = FeaturizeStats.from_json(stats.column("stats")[0].as_py())
        assert (stats.ok, stats.rejected) == (3, 1)
        body = s3.get_object(Bucket="imgs", Key="rejects/part-00003.parquet")["Body"].read()
        rejects = pq.read_table(io.BytesIO(body)).to_pandas()
        assert rejects["path"].tolist() == [paths[3]]
        assert rejects["error"].iloc[0].startswith("unreadable: FileNotFoundError")
        written = read_back(["s3://imgs/staged/part-00003.parquet"], location=at)
        assert (written.rows, written.values) == (3, 3 * 1280) and written.sample.shape == (3, 1280)
        body = s3.get_object(Bucket="imgs", Key="staged/part-00003.parquet")["Body"].read()
        features = pq.read_table(io.BytesIO(body)).to_pandas()
        assert list(features["path"]) == paths[:3] and list(features["label"]) == [
            "Apple Braeburn",
            "Kiwi",
            "Apple Braeburn",
        ]
        assert features["features"].map(len).tolist() == [1280] * 3


def test_the_driver_gets_counts_not_rows(featurized, dirty_images):
    """What comes back from the tasks is one stats row each, added up: counts that match the
    files they wrote, and the first rejections by path."""
    summary, features, _, stats = featurized
    _, bad = dirty_images
    assert (stats.computed, stats.ok, stats.rejected) == (100 + len(bad), 100, len(bad))
    assert (stats.bad_dims, stats.non_finite) == (0, 0)
    assert sum(stats.per_split.values()) == 100 and set(stats.per_split) == {"Training", "Test"}
    assert [e[0] for e in stats.reject_examples] == sorted(summary.loc[summary["error"].notna(), "path"])
    assert stats.digest.count == len(features) and 0 < stats.worker_peak_rss_mb < 4096


def test_huge_files_are_rejected_unread_and_the_worker_stays_in_budget(spark, model_bytes, tmp_path):
    """Two 1 GiB sparse files named .jpg (the old reader loaded both whole: a worker reached
    2.05 GB): one listed at its size is rejected unread; one that grew after the listing is read
    only up to the cap. The tasks' own peak resident memory stays far below a gigabyte."""
    root = tmp_path / "images"
    folder = root / "Training" / "Kiwi"
    folder.mkdir(parents=True)
    for i in range(3):
        Image.new("RGB", (100, 100), (90, 160 + i, 40)).save(folder / f"{i}_100.jpg")
    with open(folder / "huge_100.jpg", "wb") as fh:
        fh.truncate(1 << 30)
    grew = folder / "grew_100.jpg"
    grew.write_bytes(b"\xff\xd8small")
    inventory = ImageStore(uri=str(root)).scan().images
    with open(grew, "r+b") as fh:  # grows to 1 GiB after the listing said a few bytes
        fh.truncate(1 << 30)
    options = FeaturizeOptions(max_image_bytes=8 << 20, max_batch_bytes=16 << 20)
    summary, features, stats = run_featurize(
        spark, root, tmp_path / "out", model_bytes, options, inventory=inventory, with_stats=True
    )
    errors = dict(zip(summary["path"], summary["error"]))
    assert (
        errors[f"file:{folder}/huge_100.jpg"] == f"too large: {1 << 30} bytes > {8 << 20} bytes (FRUITS_MAX_IMAGE_MB=8)"
    )
    assert errors[f"file:{folder}/grew_100.jpg"] == f"too large: more > {8 << 20} bytes (FRUITS_MAX_IMAGE_MB=8)"
    assert len(features) == 3 and stats.too_large == 2
    assert stats.worker_peak_rss_mb < 700, stats.worker_peak_rss_mb
