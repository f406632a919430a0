"""Spark side of featurization: each task reads its images, runs LiteRT and writes its own
parquet parts (features, rejections); Spark only schedules the tasks and collects one row of
counts per task.

Feature vectors never cross into the JVM: converting 1,280 floats per row to Spark rows, caching
them and writing them again through parquet-mr cost as much CPU as decoding (benchmarks/,
README "Performance"). The task body imports only NumPy, Pillow, pyarrow and LiteRT, so
executors never load TensorFlow.
"""

from __future__ import annotations

import bisect
import json
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa

from ..images.decode import RejectedImage, load_rgb
from ..images.digest import RowDigest
from ..images.layout import parse_image_path, relative_image_path
from ..images.reader import ImageReader, TooLarge, too_large
from ..model.litert import cached_extractor, model_digest
from ..storage.fs import Location
from ..storage.parts import PartWriter, part_uri

# One row per image of a batch, inside a task: the task's counts and its rejections come from it.
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
REJECTS_SCHEMA = pa.schema(  # image_rejects: why an image has no feature row
    [
        ("path", pa.string()),
        ("label", pa.string()),
        ("split", pa.string()),
        ("bytes", pa.int64()),
        ("error", pa.string()),
        ("fingerprint", pa.string()),
    ]
)


@dataclass(frozen=True)
class FeaturizeOptions:
    """How featurization runs; defaults are tuned for small JPEGs (see benchmarks/)."""

    batch_size: int = 1  # inference batch: 1 is fastest per core here (benchmarks/)
    arrow_batch_rows: int = 256  # inventory rows per Arrow batch handed to a task (bounds memory)
    interpreter_threads: int = 1  # per Spark task slot: slots x threads = cores
    max_pixels: int = 50_000_000
    read_threads: int = 16  # concurrent GETs per task for s3:// images (latency-bound)
    row_group_rows: int = 2048  # ~10 MB of features per parquet row group
    max_image_bytes: int = 64 << 20  # a larger file is rejected unread (FRUITS_MAX_IMAGE_MB)
    max_batch_bytes: int = 256 << 20  # image bytes a task holds read at once (FRUITS_MAX_BATCH_MB)


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
        if isinstance(blob, TooLarge):
            errors[i] = str(blob)
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


@dataclass
class FeaturizeStats:
    """What the featurization tasks report to the driver: counts, the digest of the rows they
    wrote, the first rejections by path, and the largest resident memory a task reached."""

    computed: int = 0
    ok: int = 0
    rejected: int = 0
    bad_dims: int = 0
    non_finite: int = 0
    too_large: int = 0
    per_split: dict = field(default_factory=dict)
    digest: RowDigest = field(default_factory=RowDigest)
    reject_examples: list = field(default_factory=list)  # [path, error], smallest paths
    worker_peak_rss_mb: float = 0.0

    def add(self, summary: pa.RecordBatch, fingerprints: list[str], dim: int) -> None:
        columns = summary.to_pydict()
        for path, split, error, finite, dims, fp in zip(
            columns["path"], columns["split"], columns["error"], columns["finite"], columns["dims"], fingerprints
        ):
            self.computed += 1
            if error is not None:
                self.rejected += 1
                self.too_large += error.startswith("too large:")
                _keep_smallest(self.reject_examples, [path, error], REJECT_EXAMPLES)
                continue
            self.ok += 1
            self.bad_dims += dims != dim
            self.non_finite += not finite
            self.per_split[split] = self.per_split.get(split, 0) + 1
            self.digest.add(path, fp)

    def merge(self, other: "FeaturizeStats") -> "FeaturizeStats":
        for name in ("computed", "ok", "rejected", "bad_dims", "non_finite", "too_large"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for k, v in other.per_split.items():
            self.per_split[k] = self.per_split.get(k, 0) + v
        for item in other.reject_examples:
            _keep_smallest(self.reject_examples, item, REJECT_EXAMPLES)
        self.digest.merge(other.digest)
        self.worker_peak_rss_mb = max(self.worker_peak_rss_mb, other.worker_peak_rss_mb)
        return self

    def to_json(self) -> str:
        return json.dumps(
            {**{k: v for k, v in self.__dict__.items() if k != "digest"}, "digest": self.digest.to_json()}
        )

    @classmethod
    def from_json(cls, text: str) -> "FeaturizeStats":
        doc = json.loads(text)
        doc["digest"] = RowDigest.from_json(doc["digest"])
        return cls(**doc)


REJECT_EXAMPLES = 200


def _keep_smallest(items: list, item: list, limit: int) -> None:
    if len(items) >= limit and item[0] >= items[-1][0]:
        return
    bisect.insort(items, item, key=lambda x: x[0])
    del items[limit:]


def _byte_bounded(batch: pa.RecordBatch, limit: int) -> Iterator[pa.RecordBatch]:
    """``batch`` cut so that each piece's listed bytes stay within ``limit`` (a piece holds at
    least one row; a file over the per-file cap is never read, so one row stays within it too)."""
    sizes = batch.column("bytes").to_pylist()
    start, total = 0, 0
    for i, size in enumerate(sizes):
        if i > start and total + size > limit:
            yield batch.slice(start, i - start)
            start, total = i, 0
        total += size
    if start < len(sizes):
        yield batch.slice(start)


def _peak_rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: kilobytes


def featurize_partition(
    batches: Iterator[pa.RecordBatch],
    part_uri: str,
    root: str,
    model_bytes: bytes,
    digest: str,
    options: FeaturizeOptions,
    images_at: Location,
    parts_at: Location,
    rejects_uri: str | None = None,
) -> Iterator[pa.RecordBatch]:
    """Body of a Spark task: inventory (path, bytes, fingerprint) batches in, features written to
    ``part_uri`` and rejections to ``rejects_uri`` (both always written, empty or not, so the
    schema is there); yields one row, the task's :class:`FeaturizeStats` as JSON."""
    # An unwritable output fails first, before the model loads.
    writer = PartWriter(part_uri, parts_at, options.row_group_rows, FEATURES_SCHEMA)
    rejects = _RejectsWriter(rejects_uri, parts_at) if rejects_uri else None
    read = ImageReader(images_at, options.read_threads, options.max_image_bytes)
    stats = FeaturizeStats()
    try:
        extractor = cached_extractor(model_bytes, options.batch_size, options.interpreter_threads, digest)
        for whole in batches:
            for batch in _byte_bounded(whole, options.max_batch_bytes):
                paths = batch.column("path").to_pylist()
                sizes = batch.column("bytes").to_pylist()
                prints = (
                    batch.column("fingerprint").to_pylist()
                    if "fingerprint" in batch.schema.names
                    else [""] * len(paths)
                )
                # A file listed over the cap is rejected unread (the reader caps what grew since).
                blobs = [None if s > options.max_image_bytes else p for p, s in zip(paths, sizes)]
                wanted = [p for p in blobs if p is not None]
                got = iter(read(wanted))
                data = [
                    next(got) if p is not None else TooLarge(too_large(s, options.max_image_bytes))
                    for p, s in zip(blobs, sizes)
                ]
                summary = featurize_batch(paths, sizes, data, root, extractor, options, writer, prints)
                stats.add(summary, prints, extractor.output_dim)
                if rejects is not None:
                    rejects.add(summary, prints)
                del data, got
    finally:
        read.close()
    writer.close()
    if rejects is not None:
        rejects.close()
    stats.worker_peak_rss_mb = round(_peak_rss_mb(), 1)
    yield pa.RecordBatch.from_pydict({"stats": [stats.to_json()]})


class _RejectsWriter:
    """A task's rejections (path, label, split, bytes, error, fingerprint) as a parquet part."""

    def __init__(self, uri: str, location: Location):
        import pyarrow.parquet as pq

        from ..storage.fs import ensure_dir

        fs, path = location.filesystem(uri)
        ensure_dir(fs, path.rsplit("/", 1)[0], uri)
        self._stream = fs.open_output_stream(path)
        self._schema = REJECTS_SCHEMA
        self._writer = pq.ParquetWriter(self._stream, REJECTS_SCHEMA, compression="snappy", write_page_checksum=True)

    def add(self, summary: pa.RecordBatch, fingerprints: list[str]) -> None:
        import pyarrow.compute as pc

        mask = pc.is_valid(summary.column("error"))
        if not pc.any(mask).as_py():
            return
        table = pa.Table.from_batches([summary]).append_column("fingerprint", pa.array(fingerprints, pa.string()))
        table = table.filter(mask).select(list(self._schema.names)).cast(self._schema)
        self._writer.write_table(table)

    def close(self) -> None:
        self._writer.close()
        self._stream.close()


def featurize(
    spark,
    inventory,
    root: str,
    out_prefix: str,
    model_bytes: bytes,
    options: FeaturizeOptions = FeaturizeOptions(),
    images_at: Location = Location(),
    parts_at: Location = Location(),
    rejects_prefix: str | None = None,
    rows: int | None = None,
) -> FeaturizeStats:
    """Featurize every image of ``inventory`` (a Spark DataFrame, or a pandas frame for small
    inputs: path, bytes, fingerprint): features parquet parts written as
    ``<out_prefix>-<n>.parquet`` (path, label, split, features float[dim], fingerprint), rejections
    as ``<rejects_prefix>-<n>.parquet`` (path, label, split, bytes, error, fingerprint); returns
    the tasks' stats added up (``rows``: the inventory's row count, when known).

    ``root`` is the image store root as the inventory spells paths (``file:/abs/dir`` or
    ``s3://bucket/prefix``). A retried task rewrites the same part files.
    """
    if isinstance(inventory, pd.DataFrame):
        columns = inventory[["path", "bytes"]].astype({"bytes": "int64"})
        columns["fingerprint"] = inventory["fingerprint"].astype(str) if "fingerprint" in inventory else ""
        rows = len(columns)
        inventory = spark.createDataFrame(columns)
    elif rows is None:
        rows = inventory.count()
    parts = partition_count(rows, spark.sparkContext.defaultParallelism)
    spark.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", str(options.arrow_batch_rows))
    broadcast = spark.sparkContext.broadcast(model_bytes)
    digest = model_digest(model_bytes)

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        n = _partition_id()
        rejects_uri = part_uri(rejects_prefix, n) if rejects_prefix else None
        yield from featurize_partition(
            batches, part_uri(out_prefix, n), root, broadcast.value, digest, options, images_at, parts_at, rejects_uri
        )

    frame = inventory.select("path", "bytes", "fingerprint").repartition(parts)
    total = FeaturizeStats()
    for row in frame.mapInArrow(run, "stats string").collect():
        total.merge(FeaturizeStats.from_json(row["stats"]))
    return total
