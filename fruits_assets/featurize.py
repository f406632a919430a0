"""Spark side of featurization: read image files, run LiteRT in an iterator pandas UDF.

The UDF body imports only NumPy, Pillow and LiteRT, so executors never load TensorFlow.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import numpy as np
import pandas as pd

from .decode import RejectedImage, load_rgb
from .layout import IMAGE_PATH_REGEX, parse_image_path, relative_image_path
from .litert_runtime import cached_extractor, model_digest

RESULT_SCHEMA = "label string, split string, features array<float>, error string, finite boolean"
FEATURE_COLUMNS = ("path", "label", "split", "features")
REJECT_COLUMNS = ("path", "label", "split", "bytes", "error")


@dataclass(frozen=True)
class FeaturizeOptions:
    """How featurization runs; defaults are tuned for small JPEGs (see benchmarks/)."""

    batch_size: int = 1           # inference batch: 1 is fastest per core here (benchmarks/)
    arrow_batch_rows: int = 256   # rows per Arrow batch handed to the UDF (bounds worker memory)
    interpreter_threads: int = 1  # per Spark task slot: slots x threads = cores
    max_pixels: int = 50_000_000


def partition_settings(n_images: int, total_bytes: int, parallelism: int) -> dict[str, str]:
    """File-split settings giving about one partition per task slot for small data sets, more
    waves (at most 4, tasks of >= ~2,000 images) for large ones, instead of Spark's default
    4 MB "open cost" that turns 4,000 small JPEGs into 125 tiny tasks."""
    avg = max(1, total_bytes // max(1, n_images))
    waves = max(1, min(4, n_images // max(1, parallelism * 2000)))
    return {
        "spark.sql.files.openCostInBytes": str(avg),
        "spark.sql.files.minPartitionNum": str(max(1, parallelism * waves)),
        "spark.sql.files.maxPartitionBytes": str(max(total_bytes // max(1, parallelism * waves) + avg, 1 << 20)),
    }


def spark_path_root(root: str) -> str:
    """How binaryFile spells paths under ``root``: local folders become ``file:/abs/dir``."""
    return root.rstrip("/") if "://" in root else "file:" + root.rstrip("/")


def read_images(spark, root: str):
    """binaryFile over ``root`` (recursive), keeping .jpg/.jpeg/.png in any case."""
    from pyspark.sql import functions as F

    df = (spark.read.format("binaryFile")
          .option("recursiveFileLookup", "true")
          .load(root))
    return df.where(F.col("path").rlike(IMAGE_PATH_REGEX)).select("path", "length", "content")


def featurize_batches(batches: Iterator[tuple[pd.Series, pd.Series]], root: str, model_bytes: bytes,
                      digest: str, options: FeaturizeOptions) -> Iterator[pd.DataFrame]:
    """Body of the pandas UDF: (path, content) batches -> (label, split, features, error)."""
    extractor = cached_extractor(model_bytes, options.batch_size, options.interpreter_threads, digest)
    buffer = extractor.input_buffer()
    size = extractor.input_shape[0]
    for paths, contents in batches:
        n = len(paths)
        labels: list[str | None] = [None] * n
        splits: list[str | None] = [None] * n
        errors: list[str | None] = [None] * n
        features: list[np.ndarray | None] = [None] * n
        finite: list[bool | None] = [None] * n
        pending: list[int] = []

        def flush() -> None:
            out = extractor.run_buffer(len(pending))
            # Checked here, vectorized, for the features_finite check: a Spark higher-order
            # function over every element costs more JVM time than the rest of the aggregation.
            all_finite = np.isfinite(out).all(axis=1)
            for j, row in enumerate(pending):
                features[row] = out[j]
                finite[row] = bool(all_finite[j])
            pending.clear()

        for i, (path, content) in enumerate(zip(paths, contents)):
            try:
                splits[i], labels[i] = parse_image_path(relative_image_path(path, root))
            except ValueError as exc:
                errors[i] = str(exc)
                continue
            try:
                pixels = load_rgb(content, size, options.max_pixels)
            except RejectedImage as exc:
                errors[i] = str(exc)
                continue
            except Exception as exc:  # a decoder bug must not kill the batch: record it
                errors[i] = f"decoder error: {type(exc).__name__}: {exc}"
                continue
            buffer[len(pending)] = pixels  # the model scales uint8 pixels to [-1, 1] itself
            pending.append(i)
            if len(pending) == extractor.batch_size:
                flush()
        if pending:
            flush()
        yield pd.DataFrame({"label": labels, "split": splits, "features": features, "error": errors,
                            "finite": finite})


def with_empty_files(spark, featurized_df, inventory: pd.DataFrame):
    """Add the inventory's zero-byte files as rejects: Spark's file splitter gives a 0-byte file
    no split at all, so binaryFile silently never returns it."""
    empty = inventory[inventory["bytes"] == 0]
    if empty.empty:
        return featurized_df
    rows = [(p, lb, sp, None, 0, "empty file (0 bytes)", None) for p, lb, sp in
            zip(empty["path"], empty["label"], empty["split"])]
    return featurized_df.unionByName(spark.createDataFrame(rows, featurized_df.schema))


def featurize(spark, images_df, root: str, model_bytes: bytes, options: FeaturizeOptions = FeaturizeOptions()):
    """Add label, split, features (float[dim], null if rejected), error and finite (all features
    finite) to ``images_df``.

    ``root`` is the image store root in Spark's path form (``file:/abs/dir`` or ``s3://bucket/prefix``).
    """
    from pyspark.sql import functions as F
    from pyspark.sql.functions import pandas_udf

    spark.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", str(options.arrow_batch_rows))
    broadcast = spark.sparkContext.broadcast(model_bytes)
    digest = model_digest(model_bytes)

    @pandas_udf(RESULT_SCHEMA)
    def extract(batches: Iterator[tuple[pd.Series, pd.Series]]) -> Iterator[pd.DataFrame]:
        yield from featurize_batches(batches, root, broadcast.value, digest, options)

    result = images_df.select("path", "length", extract("path", "content").alias("r"))
    return result.select("path", "r.label", "r.split", "r.features",
                         F.col("length").alias("bytes"), "r.error", "r.finite")

