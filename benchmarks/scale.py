"""Driver-side scale benchmark: the path raw_images and image_features take before featurization,
on a synthetic store of N images, through the product's own code.

    python benchmarks/scale.py --rows 1000000
    python benchmarks/scale.py --rows 10000000

A separate process generates an S3 Inventory report of N images (parquet data files + manifest,
paths, sizes and ETags only) in moto's S3 server (its own process, on 127.0.0.1), and a committed
image_features table of N rows (empty vectors) in which 1 % differ from the report: 0.5 % changed
fingerprints, 0.5 % new images. Then, timed in this process (the driver):

- inventory: ``ImageStore.list_to_parts`` from the report, and the raw_images commit;
- plan: ``spark.plan.plan`` (the Spark join of the inventory with the committed rows);
- commit: rewriting the files that held a changed row, and the image_features commit with its
  adds and removes (the bookkeeping of an incremental run), plus the metadata read from footers.

The last line is always:

    scale rows=N inventory_s=I plan_s=P commit_s=C driver_peak_rss_mb=D jvm_peak_rss_mb=J
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))
os.environ.setdefault("PYSPARK_PYTHON", sys.executable)

BUCKET = "scale-images"
FILES = 20  # data files of the report, and files of the committed table
CLASSES = 131


def fingerprint(i: int, changed: bool) -> tuple[int, str]:
    size = 4000 + i % 3000
    return size, f"{(i * 2654435761 + (7 if changed else 0)) % (1 << 64):016x}{i:016x}"


def key(i: int) -> str:
    split = "Training" if i % 4 else "Test"
    return f"raw/{split}/Label {i % CLASSES}/{i}_100.jpg"


def generate(rows: int, endpoint: str, region: str, data: Path) -> None:
    """The report (in moto) and the committed table (in ``data``), chunk by chunk."""
    import json

    import boto3
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    from fruits_assets.spark.featurize import FEATURES_SCHEMA
    from fruits_assets.storage.tables import Lake

    s3 = boto3.client("s3", endpoint_url=endpoint, region_name=region)
    s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": region})
    new = rows // 200  # 0.5 % of the report is new images
    total = rows + new
    per_file = -(-total // FILES)
    keys = []
    for n in range(FILES):
        ids = np.arange(n * per_file, min(total, (n + 1) * per_file))
        prints = [fingerprint(int(i), int(i) % 200 == 1) for i in ids]  # 0.5 % changed
        table = pa.table(
            {
                "bucket": [BUCKET] * len(ids),
                "key": [key(int(i)) for i in ids],
                "size": pa.array([p[0] for p in prints], pa.int64()),
                "e_tag": [p[1] for p in prints],
            }
        )
        local = data / f"report-{n}.parquet"
        pq.write_table(table, local)
        s3.upload_file(str(local), BUCKET, f"inventory/data/{n}.parquet")
        local.unlink()
        keys.append(f"inventory/data/{n}.parquet")
    manifest = {
        "sourceBucket": BUCKET,
        "destinationBucket": f"arn:aws:s3:::{BUCKET}",
        "version": "2016-11-30",
        "creationTimestamp": str(int(time.time() * 1000)),
        "fileFormat": "Parquet",
        "fileSchema": "message s3.inventory { required binary bucket (STRING); required binary key (STRING); "
        "optional int64 size; optional binary e_tag (STRING); }",
        "files": [{"key": k, "size": 0, "MD5checksum": ""} for k in keys],
    }
    s3.put_object(Bucket=BUCKET, Key="inventory/manifest.json", Body=json.dumps(manifest).encode())
    lake = Lake(str(data))
    names, per_file = [], -(-rows // FILES)
    for n in range(FILES):
        ids = range(n * per_file, min(rows, (n + 1) * per_file))
        paths = [f"s3://{BUCKET}/{key(i)}" for i in ids]
        prints = [fingerprint(i, False) for i in ids]
        table = pa.Table.from_arrays(
            [
                pa.array(paths),
                pa.array([f"Label {i % CLASSES}" for i in ids]),
                pa.array(["Training" if i % 4 else "Test" for i in ids]),
                pa.array([[] for _ in ids], FEATURES_SCHEMA.field("features").type),
                pa.array([f"{p[0]}:etag:{p[1]}" for p in prints]),
            ],
            schema=FEATURES_SCHEMA,
        )
        names.append(lake.write_file("image_features", f"part-gen-{n:05d}.parquet", table))
    lake.commit("image_features", FEATURES_SCHEMA, names, [], None, {"featurizer_key": "k", "content_key": "c"})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "out" / "scale")
    parser.add_argument("--generate", nargs=3, metavar=("ENDPOINT", "REGION", "DATA"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.generate:
        generate(args.rows, args.generate[0], args.generate[1], Path(args.generate[2]))
        return

    from featurize import PeakRss, log, spark_config

    from fruits_assets_tests.conftest import free_port
    from fruits_assets_tests.emr_harness.harness import aws_env

    region, port = "eu-west-3", free_port()
    endpoint = f"http://127.0.0.1:{port}"
    os.environ.update(aws_env(endpoint, region))
    shutil.rmtree(args.out, ignore_errors=True)
    data = args.out / "data"
    data.mkdir(parents=True)
    moto = subprocess.Popen(
        [str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        time.sleep(2)
        started = time.perf_counter()
        subprocess.run(
            [sys.executable, __file__, "--rows", str(args.rows), "--generate", endpoint, region, str(data)], check=True
        )
        log(f"generated {args.rows} rows (+0.5 % new, 0.5 % changed) in {time.perf_counter() - started:.0f}s")
        measure(args.rows, endpoint, region, data, PeakRss, log, spark_config)
    finally:
        moto.terminate()
        moto.wait()


def measure(rows, endpoint, region, data, PeakRss, log, spark_config) -> None:
    from pyspark.sql import SparkSession

    from fruits_assets.defs.resources import ImageStore
    from fruits_assets.images.digest import RowDigest
    from fruits_assets.images.listing import inventory_schema
    from fruits_assets.spark import plan as spark_plan
    from fruits_assets.spark.featurize import FEATURES_SCHEMA
    from fruits_assets.storage.fs import Location
    from fruits_assets.storage.parts import read_back
    from fruits_assets.storage.tables import Lake

    lake = Lake(str(data))
    store = ImageStore(
        uri=f"s3://{BUCKET}/raw",
        endpoint_url=endpoint,
        region=region,
        inventory_manifest=f"s3://{BUCKET}/inventory/manifest.json",
    )
    builder = SparkSession.builder
    for k, v in spark_config("local[*]").items():
        builder = builder.config(k, v)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    with PeakRss() as peak:
        started = time.perf_counter()
        prefix = lake.new_prefix("raw_images", "scale")
        stats = store.list_to_parts(prefix, Location())
        info = {"images": stats.images, "listing_digest": stats.digest.hexdigest()}
        lake.commit("raw_images", inventory_schema(), lake.written(prefix), [], None, info)
        inventory_s = time.perf_counter() - started
        log(f"inventory: {stats.images} images, {stats.classes} classes in {inventory_s:.1f}s")

        started = time.perf_counter()
        inventory = lake.snapshot("raw_images")
        features = lake.snapshot("image_features")
        todo = spark_plan.plan(
            spark,
            list(inventory.file_uris()),
            list(features.file_uris()),
            [],
            Location(),
            None,
            RowDigest.parse(inventory.info["listing_digest"]),
        )
        plan_s = time.perf_counter() - started
        log(
            f"plan: {todo.compute_rows} to featurize, {todo.carried_rows} carried, {len(todo.untouched)} files "
            f"untouched, {len(todo.rewrite)} rewritten in {plan_s:.1f}s"
        )

        started = time.perf_counter()
        prefix = lake.new_prefix("image_features", "scale")
        rewritten = spark_plan.rewrite_survivors(todo, list(features.file_uris()), prefix, Location())
        todo.release()
        removes = [features.files[i] for i in todo.removed_files]
        version = lake.commit("image_features", FEATURES_SCHEMA, lake.written(prefix), removes, features.version, {})
        written = read_back([f"{features.uri}/{n}" for n in lake.written(prefix)], 0)
        commit_s = time.perf_counter() - started
        log(f"commit: {rewritten} rows rewritten, version {version}, {written.rows} rows in footers in {commit_s:.1f}s")
    spark.stop()
    print(
        f"scale rows={rows} inventory_s={inventory_s:.1f} plan_s={plan_s:.1f} commit_s={commit_s:.1f} "
        f"driver_peak_rss_mb={peak.mb('driver_python')} jvm_peak_rss_mb={peak.mb('jvm')}",
        flush=True,
    )


if __name__ == "__main__":
    main()
