"""The incremental plan of image_features, in Spark: which images need features, which committed
files stay as they are, which are rewritten without their changed rows, which rejections carry
over. Per-image rows stay in Spark (read from the committed files by Python tasks, joined by
Spark); the driver gets counts, digests and file indexes, never a row per image.

A feature row (or a rejection) is still valid when its image has the same path and fingerprint
(images/listing.py) and it was computed by the same featurizer (analysis/keys.py).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from ..images.digest import RowDigest
from ..storage.fs import Location, ensure_dir
from .featurize import _partition_id

INVENTORY_DDL = "path string, label string, split string, bytes long, fingerprint string, skipped string"
KEYS_DDL = "path string, fingerprint string, file int"
REJECT_COLUMNS = ("path", "label", "split", "bytes", "error", "fingerprint")
REJECTS_DDL = "path string, label string, split string, bytes long, error string, fingerprint string"
TRANSIENT_REJECTS = ("unreadable:", "decoder error:")  # retried next run, not carried over
READ_BATCH_ROWS = 65_536


class UnreadableFile(RuntimeError):
    """A committed file a task could not read (message: one line naming it and the repair)."""


def key_of(values) -> pa.Array:
    """A 64-bit key per string (SipHash-2-4, pandas' ``hash_array``): the JVM joins these instead
    of the paths and fingerprints themselves (~60 bytes each), a tenth of the bytes to shuffle.
    Two different paths share a key with probability ~n^2/2^65 (3e-6 at 10 M images), and a
    wrong match needs their fingerprints' keys to agree too (2^-64 more)."""
    import numpy as np
    from pandas.util import hash_array

    array = values.to_numpy(zero_copy_only=False) if hasattr(values, "to_numpy") else np.asarray(values, object)
    keys = hash_array(array.astype(object), encoding="utf8", hash_key="fruits-assets-k1", categorize=False)
    return pa.array(keys.view(np.int64))


def read_files(
    spark,
    files: list[str],
    columns: list[str],
    ddl: str,
    location: Location,
    with_file: bool = False,
    transform=None,
):
    """A DataFrame of ``columns`` of parquet ``files`` (URIs), read by Python tasks through
    pyarrow (local files and S3 alike: the cluster needs no Hadoop S3 connector), page checksums
    verified; ``with_file`` adds ``file``, the index of the row's file in ``files``;
    ``transform(batch) -> batch`` runs in the task (``ddl`` is then its output's schema)."""
    parallelism = spark.sparkContext.defaultParallelism
    listing = spark.createDataFrame([(i, f) for i, f in enumerate(files)], "file int, uri string")
    listing = listing.repartition(max(1, min(len(files), parallelism * 4)))

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            for index, uri in zip(batch.column("file").to_pylist(), batch.column("uri").to_pylist()):
                fs, path = location.filesystem(uri)
                try:
                    with fs.open_input_file(path) as fh:
                        pf = pq.ParquetFile(fh, page_checksum_verification=True)
                        for chunk in pf.iter_batches(batch_size=READ_BATCH_ROWS, columns=columns):
                            if with_file:
                                chunk = chunk.append_column("file", pa.array([index] * len(chunk), pa.int32()))
                            if transform is not None:
                                chunk = transform(chunk)
                            if len(chunk):
                                yield chunk
                except (OSError, ValueError) as exc:
                    asset = uri.rstrip("/").rsplit("/", 2)[-2]
                    raise UnreadableFile(
                        f"committed file {uri} cannot be read ({str(exc).splitlines()[0]}); "
                        f"run `fruits-assets repair {asset}`"
                    ) from None

    return listing.mapInArrow(run, ddl)


def digest_of(frame) -> RowDigest:
    """The order-free digest of a DataFrame's (path, fingerprint) rows, added up task by task."""

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        digest = RowDigest()
        for batch in batches:
            digest.add_many(batch.column(0), batch.column(1))
        yield pa.RecordBatch.from_pydict({"digest": [json.dumps(digest.to_json())]})

    total = RowDigest()
    for row in frame.select("path", "fingerprint").mapInArrow(run, "digest string").collect():
        total.merge(RowDigest.from_json(json.loads(row["digest"])))
    return total


@dataclass
class Plan:
    """What a run of image_features does, as Spark DataFrames plus driver-sized aggregates."""

    reason: str
    inventory_rows: int
    compute: object  # DataFrame: path, bytes, fingerprint (and label, split)
    compute_rows: int
    carried_rows: int = 0
    carried_digest: RowDigest = field(default_factory=RowDigest)
    carried_per_split: dict = field(default_factory=dict)
    untouched: list = field(default_factory=list)  # indexes of committed files kept as they are
    rewrite: list = field(default_factory=list)  # indexes of files rewritten without their changed rows
    removed_files: list = field(default_factory=list)  # indexes of files the new version no longer holds
    carried_rejects: object = None  # DataFrame of REJECT_COLUMNS, or None
    carried_rejects_rows: int = 0
    removed: int = 0  # featurized or rejected paths gone from the inventory
    _cached: list = field(default_factory=list)
    _carried: Any = None  # DataFrame: pkey, file of the rows carried over

    def release(self) -> None:
        for frame in self._cached:
            frame.unpersist()


def plan(
    spark,
    inventory_files: list[str],
    features_files: list[str] | None,
    rejects_files: list[str],
    location: Location,
    reuse: str | None,
    inventory_digest: RowDigest | None = None,
) -> Plan:
    """``features_files``: the committed image_features files (None: no table to build on);
    ``reuse``: None when its rows can be carried over, else why not (the reason of the plan);
    ``inventory_digest``: the digest raw_images recorded of its images (computed when None)."""
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    keep = StorageLevel.MEMORY_AND_DISK
    inventory = read_files(spark, inventory_files, list(INVENTORY_DDL_COLUMNS), INVENTORY_DDL, location)
    inventory = inventory.where(F.col("skipped").isNull()).drop("skipped")
    if features_files is None or reuse is not None:
        # Everything is computed: the rows are read again by the featurization tasks, never kept.
        inventory_rows = inventory.count()
        removed = 0
        if features_files is not None:
            gone = _known_paths(spark, features_files, rejects_files, location)
            removed = gone.join(inventory.select("path"), "path", "left_anti").count()
        return Plan(
            reuse or "first version",
            inventory_rows,
            inventory,
            inventory_rows,
            removed_files=list(range(len(features_files or []))),
            removed=removed,
        )
    # The JVM joins 64-bit keys of paths and fingerprints, hash-partitioned by path key once on
    # both sides (no further shuffle); the rows themselves stay in the files, and Python tasks
    # pick the ones to compute (below).
    parts = max(int(spark.conf.get("spark.sql.shuffle.partitions", "8")), len(features_files), 1)
    inventory_keys = (
        read_files(
            spark, inventory_files, ["path", "fingerprint", "skipped"], _KEYS_DDL, location, transform=_image_keys
        )
        .repartition(parts, "pkey")
        .persist(keep)
    )
    feature_keys = (
        read_files(spark, features_files, ["path", "fingerprint", "split"], _FILE_KEYS_DDL, location, True, _file_keys)
        .repartition(parts, "pkey")
        .persist(keep)
    )
    cached = [inventory_keys, feature_keys]
    inventory_rows = inventory_keys.count()
    matched = feature_keys.join(inventory_keys.withColumnRenamed("fkey", "now"), "pkey", "left").withColumn(
        "valid", F.col("fkey") == F.col("now")
    )
    # One pass over the committed rows: per file (and split), how many rows stay valid and how
    # many images are gone; the driver gets files x splits counts.
    per_file = (
        matched.groupBy("file", "split")
        .agg(
            F.count(F.lit(1)).alias("rows"),
            F.sum(F.col("valid").cast("long")).alias("kept"),
            F.sum(F.col("now").isNull().cast("long")).alias("gone"),
        )
        .collect()
    )
    totals: dict[int, int] = {}
    kept: dict[int, int] = {}
    carried_per_split: dict[str, int] = {}
    gone = 0
    for r in per_file:
        totals[r["file"]] = totals.get(r["file"], 0) + r["rows"]
        kept[r["file"]] = kept.get(r["file"], 0) + (r["kept"] or 0)
        gone += r["gone"] or 0
        if r["kept"] and r["split"] is not None:
            carried_per_split[str(r["split"])] = carried_per_split.get(str(r["split"]), 0) + r["kept"]
    untouched = sorted(f for f, n in totals.items() if kept.get(f, 0) == n)
    rewrite = sorted(f for f, n in totals.items() if 0 < kept.get(f, 0) < n)
    removed_files = sorted(f for f, n in totals.items() if kept.get(f, 0) < n)
    carried = matched.where(F.col("valid")).select("pkey", "file")
    transient = F.lit(False)
    for prefix in TRANSIENT_REJECTS:
        transient = transient | F.col("error").startswith(prefix)
    # Only rejections that would come out the same: not transient reads or decoder crashes, and
    # never a path that has a feature row (image_rejects may come from another run).
    rejects = read_files(spark, rejects_files, list(REJECT_COLUMNS), _REJECT_KEYS_DDL, location, transform=_reject_keys)
    still = (
        rejects.where(~transient)
        .join(inventory_keys.withColumnRenamed("fkey", "now"), "pkey")
        .where(F.col("fkey") == F.col("now"))
        .join(feature_keys.select("pkey"), "pkey", "left_anti")
        .persist(keep)
    )
    cached.append(still)
    compute_keys = inventory_keys.join(carried.select("pkey"), "pkey", "left_anti")
    if rejects_files:
        compute_keys = compute_keys.join(still.select("pkey"), "pkey", "left_anti")
    compute_keys = compute_keys.select("pkey").persist(keep)
    cached.append(compute_keys)
    compute_rows = compute_keys.count()
    full = read_files(
        spark,
        inventory_files,
        list(INVENTORY_DDL_COLUMNS),
        INVENTORY_DDL + ", pkey long",
        location,
        transform=lambda b: b.append_column("pkey", key_of(b.column("path"))),
    )
    full = full.where(F.col("skipped").isNull()).drop("skipped")
    # The images to compute: a semi-join against the (small, typically) set of keys to compute:
    # the full rows stream through once, never shuffled, sorted or kept.
    small = compute_rows <= BROADCAST_KEYS
    compute = full.join(F.broadcast(compute_keys) if small else compute_keys, "pkey", "left_semi").drop("pkey")
    compute = compute.persist(keep)
    cached.append(compute)
    compute_digest = digest_of(compute)
    # The inventory is carried rows + rows to compute + rejections carried (disjoint): the carried
    # rows' digest is the inventory's minus the two small ones, no pass over every carried row.
    carried_digest = (inventory_digest or digest_of(full)).minus(compute_digest).minus(digest_of(still))
    known_rejects = rejects.join(inventory_keys, "pkey", "left_anti").count() if rejects_files else 0
    return Plan(
        "incremental",
        inventory_rows,
        compute,
        compute_rows,
        carried_rows=sum(kept.values()),
        carried_digest=carried_digest,
        carried_per_split=carried_per_split,
        untouched=untouched,
        rewrite=rewrite,
        removed_files=removed_files,
        carried_rejects=still.select(*REJECT_COLUMNS),
        carried_rejects_rows=still.count(),
        removed=gone + known_rejects,
        _cached=cached,
        _carried=carried,
    )


BROADCAST_KEYS = 4_000_000  # keys to compute sent whole to every task (32 MB) rather than shuffled
_KEYS_DDL = "pkey long, fkey long"
_FILE_KEYS_DDL = "pkey long, fkey long, split string, file int"
_REJECT_KEYS_DDL = REJECTS_DDL + ", pkey long, fkey long"


def _image_keys(batch: pa.RecordBatch) -> pa.RecordBatch:
    import pyarrow.compute as pc

    images = batch.filter(pc.is_null(batch.column("skipped")))
    return pa.RecordBatch.from_arrays(
        [key_of(images.column("path")), key_of(images.column("fingerprint"))], names=["pkey", "fkey"]
    )


def _file_keys(batch: pa.RecordBatch) -> pa.RecordBatch:
    return pa.RecordBatch.from_arrays(
        [
            key_of(batch.column("path")),
            key_of(batch.column("fingerprint")),
            batch.column("split"),
            batch.column("file"),
        ],
        names=["pkey", "fkey", "split", "file"],
    )


def _reject_keys(batch: pa.RecordBatch) -> pa.RecordBatch:
    return batch.append_column("pkey", key_of(batch.column("path"))).append_column(
        "fkey", key_of(batch.column("fingerprint"))
    )


INVENTORY_DDL_COLUMNS = ("path", "label", "split", "bytes", "fingerprint", "skipped")


def _known_paths(spark, features_files, rejects_files, location):
    paths = read_files(spark, features_files, ["path", "fingerprint"], KEYS_DDL, location, True).select("path")
    if rejects_files:
        paths = paths.unionAll(
            read_files(spark, rejects_files, list(REJECT_COLUMNS), REJECTS_DDL, location).select("path")
        )
    return paths


def rewrite_survivors(todo: Plan, files: list[str], prefix: str, location: Location) -> int:
    """The surviving rows of each file in ``todo.rewrite`` written by a task into
    ``<prefix>-c<file>.parquet``, bit for bit (checksums verified on read: a damaged page is never
    rewritten into a fresh, valid file). Returns the rows rewritten."""
    if not todo.rewrite:
        return 0
    from pyspark.sql import functions as F

    carried = todo._carried
    spark = carried.sparkSession
    n = max(1, min(len(todo.rewrite), spark.sparkContext.defaultParallelism * 4))
    subset = carried.where(F.col("file").isin(todo.rewrite)).select("file", "pkey").repartition(n, "file")

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        import pyarrow.compute as pc

        by_file: dict[int, list[pa.Array]] = {}
        for batch in batches:
            table = pa.Table.from_batches([batch])
            for f in pc.unique(table.column("file")).to_pylist():
                rows = table.filter(pc.equal(table.column("file"), f))
                by_file.setdefault(f, []).append(rows.column("pkey").combine_chunks())
        written = 0
        for f, keys in by_file.items():
            fs, path = location.filesystem(files[f])
            table = pq.read_table(path, filesystem=fs, page_checksum_verification=True)
            table = table.filter(pc.is_in(key_of(table.column("path").combine_chunks()), pa.concat_arrays(keys)))
            out = f"{prefix}-c{f:05d}.parquet"
            out_fs, out_path = location.filesystem(out)
            ensure_dir(out_fs, out_path.rsplit("/", 1)[0], out)
            pq.write_table(
                table,
                out_path,
                filesystem=out_fs,
                compression="snappy",
                use_dictionary=["path", "label", "split"],
                write_page_checksum=True,
            )
            written += table.num_rows
        yield pa.RecordBatch.from_pydict({"rows": [written]})

    return sum(r["rows"] for r in subset.mapInArrow(run, "rows long").collect())


def write_rows(frame, prefix: str, schema: pa.Schema, location: Location) -> int:
    """Each task writes its rows of ``frame`` to ``<prefix>-<n>.parquet``; returns the row count."""
    columns = schema.names

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        uri = f"{prefix}-{_partition_id():05d}.parquet"
        fs, path = location.filesystem(uri)
        ensure_dir(fs, path.rsplit("/", 1)[0], uri)
        rows = 0
        with fs.open_output_stream(path) as stream:
            writer = pq.ParquetWriter(stream, schema, compression="snappy", write_page_checksum=True)
            for batch in batches:
                writer.write_batch(
                    pa.RecordBatch.from_arrays(
                        [batch.column(c).cast(schema.field(c).type) for c in columns], schema=schema
                    )
                )
                rows += len(batch)
            writer.close()
        yield pa.RecordBatch.from_pydict({"rows": [rows]})

    return sum(r["rows"] for r in frame.select(*columns).mapInArrow(run, "rows long").collect())
