"""Spark side of featurization: each task reads its images, runs LiteRT and writes its own
parquet part; Spark only schedules the tasks and collects one small summary row per image.

Feature vectors never cross into the JVM: converting 1,280 floats per row to Spark rows, caching
them and writing them again through parquet-mr cost as much CPU as decoding (benchmarks/,
README "Performance"). The task body imports only NumPy, Pillow, pyarrow and LiteRT, so
executors never load TensorFlow.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Iterator, Optional

import numpy as np
import pandas as pd
import pyarrow as pa

from .decode import RejectedImage, load_rgb
from .layout import parse_image_path, relative_image_path
from .litert_runtime import cached_extractor, model_digest

REJECT_COLUMNS = ("path", "label", "split", "bytes", "error")
# One row per inventory image, collected to the driver: every count and check comes from it.
SUMMARY_DDL = "path string, label string, split string, bytes long, error string, finite boolean, dims int"
SUMMARY_SCHEMA = pa.schema([("path", pa.string()), ("label", pa.string()), ("split", pa.string()),
                            ("bytes", pa.int64()), ("error", pa.string()), ("finite", pa.bool_()),
                            ("dims", pa.int32())])
FEATURES_SCHEMA = pa.schema([("path", pa.string()), ("label", pa.string()), ("split", pa.string()),
                             ("features", pa.list_(pa.field("element", pa.float32())))])
PART_NAME = "part-{:05d}.parquet"


def is_data_part(name: str) -> bool:
    """A parquet file of the table, not a sidecar ("_images.parquet"): Spark and pyarrow skip
    names starting with "_" or "." too."""
    return name.endswith(".parquet") and not name.startswith(("_", "."))


@dataclass(frozen=True)
class FeaturizeOptions:
    """How featurization runs; defaults are tuned for small JPEGs (see benchmarks/)."""

    batch_size: int = 1           # inference batch: 1 is fastest per core here (benchmarks/)
    arrow_batch_rows: int = 256   # inventory rows per Arrow batch handed to a task (bounds memory)
    interpreter_threads: int = 1  # per Spark task slot: slots x threads = cores
    max_pixels: int = 50_000_000
    read_threads: int = 16        # concurrent GETs per task for s3:// images (latency-bound)
    row_group_rows: int = 2048    # ~10 MB of features per parquet row group


@dataclass(frozen=True)
class Location:
    """Where a task reads and writes: a local path (``file:`` prefix allowed) or s3://; the
    endpoint and region are passed explicitly so workers need no environment."""

    endpoint_url: Optional[str] = None
    region: Optional[str] = None

    def filesystem(self, uri: str):
        from .storage import filesystem

        if uri.startswith("file:"):
            uri = uri[len("file:"):]
        return filesystem(uri, self.endpoint_url, self.region)


def partition_count(n_images: int, parallelism: int) -> int:
    """About one task per slot for small data sets; more waves (at most 4, tasks of >= ~2,000
    images) for large ones, so a slow task does not hold the whole stage."""
    waves = max(1, min(4, n_images // max(1, parallelism * 2000)))
    return max(1, min(n_images, parallelism * waves))


def spark_path_root(root: str) -> str:
    """How the inventory (and Spark) spell paths under ``root``: local folders become ``file:/abs/dir``."""
    return root.rstrip("/") if "://" in root else "file:" + root.rstrip("/")


class ImageReader:
    """``reader(paths) -> [bytes | OSError]`` in order: local files in turn, S3 objects
    concurrently (small GETs are latency-bound; binaryFile on EMRFS fetches them one by one)."""

    def __init__(self, location: Location, threads: int):
        self._location, self._threads = location, threads
        self._fs = self._pool = None

    def _get(self, path: str):
        try:
            if "://" not in path:
                with open(path[len("file:"):] if path.startswith("file:") else path, "rb") as fh:
                    return fh.read()
            with self._fs.open_input_stream(path.split("://", 1)[1]) as stream:
                return stream.read()
        except OSError as exc:
            return exc

    def __call__(self, paths: list[str]) -> list:
        remote = [p for p in paths if "://" in p]
        if not remote:
            return [self._get(p) for p in paths]
        if self._pool is None:
            self._fs = self._location.filesystem(remote[0])[0]
            self._pool = ThreadPoolExecutor(max_workers=self._threads)
        return list(self._pool.map(self._get, paths))

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()


class PartWriter:
    """The parquet part of one task: row groups built from flat float32 buffers (no per-row
    Python objects for the vectors, no dictionary pages for values that never repeat)."""

    def __init__(self, uri: str, location: Location, row_group_rows: int, schema: pa.Schema = FEATURES_SCHEMA):
        import pyarrow.parquet as pq

        fs, path = location.filesystem(uri)
        if "://" not in uri:
            fs.create_dir(path.rsplit("/", 1)[0], recursive=True)
        self._stream = fs.open_output_stream(path)
        self._schema = schema  # path, label, split, <vector> list<float32>
        self._writer = pq.ParquetWriter(self._stream, schema, compression="snappy",
                                        use_dictionary=["path", "label", "split"])
        self._row_group_rows = row_group_rows
        self._pending: list[tuple[list, list, list, np.ndarray]] = []
        self._pending_rows = 0
        self.rows = 0

    def add(self, paths: list, labels: list, splits: list, features: np.ndarray) -> None:
        if len(paths):
            self._pending.append((paths, labels, splits, features))
            self._pending_rows += len(paths)
        if self._pending_rows >= self._row_group_rows:
            self._flush()

    def _flush(self) -> None:
        if not self._pending:
            return
        matrix = np.concatenate([p[3] for p in self._pending])
        n, dim = matrix.shape
        offsets = pa.array(np.arange(0, (n + 1) * dim, dim, dtype=np.int32))
        columns = [pa.array([v for p in self._pending for v in p[k]], pa.string()) for k in range(3)]
        table = pa.Table.from_arrays(
            [*columns, pa.ListArray.from_arrays(offsets, pa.array(matrix.reshape(-1)))], schema=self._schema)
        self._writer.write_table(table, row_group_size=max(n, 1))
        self.rows += n
        self._pending, self._pending_rows = [], 0

    def close(self) -> int:
        self._flush()
        self._writer.close()
        self._stream.close()
        return self.rows


def featurize_batch(paths: list[str], sizes: list[int], blobs: list, root: str, extractor,
                    options: FeaturizeOptions, writer: PartWriter) -> pa.RecordBatch:
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
    all_finite = np.isfinite(features[ok]).all(axis=1)  # for the features_finite check
    for j, i in enumerate(ok):
        finite[i] = bool(all_finite[j])
    writer.add([paths[i] for i in ok], [labels[i] for i in ok], [splits[i] for i in ok], features[ok])
    dims = [extractor.output_dim if e is None else None for e in errors]
    return pa.RecordBatch.from_arrays(
        [pa.array(paths, pa.string()), pa.array(labels, pa.string()), pa.array(splits, pa.string()),
         pa.array(sizes, pa.int64()), pa.array(errors, pa.string()), pa.array(finite, pa.bool_()),
         pa.array(dims, pa.int32())], schema=SUMMARY_SCHEMA)


def featurize_partition(batches: Iterator[pa.RecordBatch], part_uri: str, root: str, model_bytes: bytes,
                        digest: str, options: FeaturizeOptions, images_at: Location,
                        parts_at: Location) -> Iterator[pa.RecordBatch]:
    """Body of a Spark task: inventory (path, bytes) batches in, summary batches out, features
    written to ``part_uri`` (always written, empty or not, so the schema is there)."""
    writer = PartWriter(part_uri, parts_at, options.row_group_rows)  # an unwritable output fails first
    read = ImageReader(images_at, options.read_threads)
    try:
        extractor = cached_extractor(model_bytes, options.batch_size, options.interpreter_threads, digest)
        for batch in batches:
            paths = batch.column("path").to_pylist()
            yield featurize_batch(paths, batch.column("bytes").to_pylist(), read(paths), root, extractor,
                                  options, writer)
    finally:
        read.close()
    writer.close()


def featurize(spark, inventory: pd.DataFrame, root: str, out_uri: str, model_bytes: bytes,
              options: FeaturizeOptions = FeaturizeOptions(), images_at: Location = Location(),
              parts_at: Location = Location()) -> pd.DataFrame:
    """Featurize every image of ``inventory`` (path, bytes): features parquet parts written under
    ``out_uri`` (path, label, split, features float[dim]); returns the summary, one row per image
    (path, label, split, bytes, error, finite, dims); a rejected image has its reason in ``error``.

    ``root`` is the image store root as the inventory spells paths (``file:/abs/dir`` or
    ``s3://bucket/prefix``). A retried task rewrites the same part file.
    """
    parts = partition_count(len(inventory), spark.sparkContext.defaultParallelism)
    spark.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", str(options.arrow_batch_rows))
    broadcast = spark.sparkContext.broadcast(model_bytes)
    digest = model_digest(model_bytes)
    out_uri = out_uri.rstrip("/")

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        from pyspark import TaskContext

        part_uri = f"{out_uri}/{PART_NAME.format(TaskContext.get().partitionId())}"
        yield from featurize_partition(batches, part_uri, root, broadcast.value, digest, options, images_at,
                                       parts_at)

    rows = spark.createDataFrame(inventory[["path", "bytes"]].astype({"bytes": "int64"})).repartition(parts)
    return rows.mapInArrow(run, SUMMARY_DDL).toPandas()


@dataclass(frozen=True)
class WrittenParts:
    """What the parquet parts under a folder really hold: row and feature-value counts from
    their footers, and a sample of feature vectors spread over the parts."""

    rows: int
    values: int
    sample: np.ndarray


def read_back(uri: str, sample_limit: int = 1000, location: Location = Location(),
              column: str = "features") -> WrittenParts:
    """Open each part under ``uri`` once: footer counts plus the first vectors of each part (none
    when ``sample_limit`` is 0)."""
    import pyarrow.fs as pafs
    import pyarrow.parquet as pq

    fs, path = location.filesystem(uri)
    parts = sorted(i.path for i in fs.get_file_info(pafs.FileSelector(path))
                   if i.type == pafs.FileType.File and is_data_part(i.base_name))
    name, column = column, FEATURES_SCHEMA.get_field_index("features")  # the vector is the 4th column
    rows = values = 0
    chunks, per_part = [], max(1, sample_limit // max(1, len(parts)))
    for part in parts:
        with fs.open_input_file(part) as fh:
            pf = pq.ParquetFile(fh)
            meta = pf.metadata
            rows += meta.num_rows
            values += sum(meta.row_group(g).column(column).num_values for g in range(meta.num_row_groups))
            if meta.num_rows and sample_limit:
                # The first batch only: reading the whole row group costs 3-20x more.
                vectors = next(pf.iter_batches(batch_size=per_part, columns=[name])).column(0)
                flat = vectors.flatten().to_numpy()  # one buffer, no per-row arrays
                chunks.append(flat.reshape(len(vectors), len(flat) // len(vectors)))
    sample = np.concatenate(chunks) if chunks else np.empty((0, 0), dtype=np.float32)
    return WrittenParts(rows, values, sample)
