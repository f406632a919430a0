"""Spark side of featurization: each task reads its images, runs LiteRT and writes its own
parquet part; Spark only schedules the tasks and collects one small summary row per image.

Feature vectors never cross into the JVM: converting 1,280 floats per row to Spark rows, caching
them and writing them again through parquet-mr cost as much CPU as decoding (benchmarks/,
README "Performance"). The task body imports only NumPy, Pillow, pyarrow and LiteRT, so
executors never load TensorFlow.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa

from ..images.decode import RejectedImage, load_rgb
from ..images.layout import parse_image_path, relative_image_path
from ..images.reader import ImageReader
from ..model.litert import cached_extractor, model_digest
from ..storage.fs import Location
from ..storage.parts import PartWriter, part_uri

# One row per inventory image, collected to the driver: every count and check comes from it.
SUMMARY_DDL = "path string, label string, split string, bytes long, error string, finite boolean, dims int"
SUMMARY_SCHEMA = pa.schema(
    [
        ("path", pa.string()),
        ("label", pa.string()),
        ("split", pa.string()),
        ("bytes", pa.int64()),
        ("error", pa.string()),
        ("finite", pa.bool_()),
        ("dims", pa.int32()),
    ]
)
FEATURES_SCHEMA = pa.schema(
    [
        ("path", pa.string()),
        ("label", pa.string()),
        ("split", pa.string()),
        ("features", pa.list_(pa.field("element", pa.float32()))),
        ("fingerprint", pa.string()),  # of the image the row was computed from (incremental runs)
    ]
)
SUMMARY_COLUMNS = tuple(SUMMARY_SCHEMA.names)


@dataclass(frozen=True)
class FeaturizeOptions:
    """How featurization runs; defaults are tuned for small JPEGs (see benchmarks/)."""

    batch_size: int = 1  # inference batch: 1 is fastest per core here (benchmarks/)
    arrow_batch_rows: int = 256  # inventory rows per Arrow batch handed to a task (bounds memory)
    interpreter_threads: int = 1  # per Spark task slot: slots x threads = cores
    max_pixels: int = 50_000_000
    read_threads: int = 16  # concurrent GETs per task for s3:// images (latency-bound)
    row_group_rows: int = 2048  # ~10 MB of features per parquet row group


def _partition_id() -> int:
    """The Spark partition a task body runs for (names its part file: a retried task rewrites it)."""
    from pyspark import TaskContext

    context = TaskContext.get()
    if context is None:
        raise RuntimeError("not inside a Spark task")
    return context.partitionId()


def partition_count(n_images: int, parallelism: int) -> int:
    """About one task per slot for small data sets; more waves (at most 4, tasks of >= ~2,000
    images) for large ones, so a slow task does not hold the whole stage."""
    waves = max(1, min(4, n_images // max(1, parallelism * 2000)))
    return max(1, min(n_images, parallelism * waves))


def spark_path_root(root: str) -> str:
    """How the inventory (and Spark) spell paths under ``root``: local folders become ``file:/abs/dir``."""
    return root.rstrip("/") if "://" in root else "file:" + root.rstrip("/")


def featurize_batch(
    paths: list[str],
    sizes: list[int],
    blobs: list,
    root: str,
    extractor,
    options: FeaturizeOptions,
    writer: PartWriter,
    fingerprints: list[str] | None = None,
) -> pa.RecordBatch:
    """Features of one batch of images into ``writer``; returns its summary rows (one per image:
    label, split, bytes, error or None, finite, dims)."""
    n = len(paths)
    labels: list[str | None] = [None] * n
    splits: list[str | None] = [None] * n
    errors: list[str | None] = [None] * n
    finite: list[bool | None] = [None] * n
    features = np.empty((n, extractor.output_dim), dtype=np.float32)
    buffer, size = extractor.input_buffer(), extractor.input_shape[0]
    pending: list[int] = []

    def flush() -> None:
        features[pending] = extractor.run_buffer(len(pending))
        pending.clear()

    for i, (path, blob) in enumerate(zip(paths, blobs)):
        try:
            splits[i], labels[i] = parse_image_path(relative_image_path(path, root))
        except ValueError as exc:
            errors[i] = str(exc)
            continue
        if isinstance(blob, Exception):
            errors[i] = f"unreadable: {type(blob).__name__}: {blob}"
            continue
        try:
            buffer[len(pending)] = load_rgb(blob, size, options.max_pixels)  # model scales uint8 itself
        except RejectedImage as exc:
            errors[i] = str(exc)
            continue
        except Exception as exc:  # a decoder bug must not kill the task: record it
            errors[i] = f"decoder error: {type(exc).__name__}: {exc}"
            continue
        pending.append(i)
        if len(pending) == extractor.batch_size:
            flush()
    if pending:
        flush()
    ok = [i for i in range(n) if errors[i] is None]
    all_finite = np.asarray(np.isfinite(features[ok]).all(axis=1))  # for the features_finite check
    for j, i in enumerate(ok):
        finite[i] = bool(all_finite[j])
    prints = fingerprints or [""] * n
    writer.add(
        [[paths[i] for i in ok], [labels[i] for i in ok], [splits[i] for i in ok], [prints[i] for i in ok]],
        features[ok],
    )
    dims = [extractor.output_dim if e is None else None for e in errors]
    return pa.RecordBatch.from_arrays(
        [
            pa.array(paths, pa.string()),
            pa.array(labels, pa.string()),
            pa.array(splits, pa.string()),
            pa.array(sizes, pa.int64()),
            pa.array(errors, pa.string()),
            pa.array(finite, pa.bool_()),
            pa.array(dims, pa.int32()),
        ],
        schema=SUMMARY_SCHEMA,
    )


def featurize_partition(
    batches: Iterator[pa.RecordBatch],
    part_uri: str,
    root: str,
    model_bytes: bytes,
    digest: str,
    options: FeaturizeOptions,
    images_at: Location,
    parts_at: Location,
) -> Iterator[pa.RecordBatch]:
    """Body of a Spark task: inventory (path, bytes) batches in, summary batches out, features
    written to ``part_uri`` (always written, empty or not, so the schema is there)."""
    # An unwritable output fails first, before the model loads.
    writer = PartWriter(part_uri, parts_at, options.row_group_rows, FEATURES_SCHEMA)
    read = ImageReader(images_at, options.read_threads)
    try:
        extractor = cached_extractor(model_bytes, options.batch_size, options.interpreter_threads, digest)
        for batch in batches:
            paths = batch.column("path").to_pylist()
            yield featurize_batch(
                paths,
                batch.column("bytes").to_pylist(),
                read(paths),
                root,
                extractor,
                options,
                writer,
                batch.column("fingerprint").to_pylist() if "fingerprint" in batch.schema.names else None,
            )
    finally:
        read.close()
    writer.close()


def featurize(
    spark,
    inventory: pd.DataFrame,
    root: str,
    out_prefix: str,
    model_bytes: bytes,
    options: FeaturizeOptions = FeaturizeOptions(),
    images_at: Location = Location(),
    parts_at: Location = Location(),
) -> pd.DataFrame:
    """Featurize every image of ``inventory`` (path, bytes, fingerprint): features parquet parts
    written as ``<out_prefix>-<n>.parquet`` (path, label, split, features float[dim], fingerprint);
    returns the summary, one row per image (path, label, split, bytes, error, finite, dims); a
    rejected image has its reason in ``error``.

    ``root`` is the image store root as the inventory spells paths (``file:/abs/dir`` or
    ``s3://bucket/prefix``). A retried task rewrites the same part file.
    """
    parts = partition_count(len(inventory), spark.sparkContext.defaultParallelism)
    spark.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", str(options.arrow_batch_rows))
    broadcast = spark.sparkContext.broadcast(model_bytes)
    digest = model_digest(model_bytes)

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        out = part_uri(out_prefix, _partition_id())
        yield from featurize_partition(batches, out, root, broadcast.value, digest, options, images_at, parts_at)

    columns = inventory[["path", "bytes"]].astype({"bytes": "int64"})
    columns["fingerprint"] = inventory["fingerprint"].astype(str) if "fingerprint" in inventory else ""
    rows = spark.createDataFrame(columns).repartition(parts)
    return rows.mapInArrow(run, SUMMARY_DDL).toPandas()
