"""Listing an image store in shards, so that no single process walks (or holds) all of it.

The driver only finds the shards: the top-level folders of a local store, the ``<split>/<label>/``
prefixes of an S3 store (two delimiter listings per split), or the data files an S3 Inventory
manifest names. Each shard is then listed by a Spark task (raw_images) or a thread (the sensor,
:func:`fruits_assets.images.inventory.scan`) with :func:`entries`; what comes back to the driver is
:class:`ListingStats`, an aggregate whose size does not grow with the number of images.

Pure listing logic: no Dagster, no Spark.
"""

from __future__ import annotations

import json
import os
import stat
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Iterator, Optional

from ..storage.fs import is_s3
from .digest import RowDigest
from .layout import parse_image_path
from .local_walk import missing_root_message, top_level, walk
from .s3_inventory import inventory_batches, read_manifest

# (path, relative path, bytes, skip reason or None, S3 ETag or None)
Entry = tuple[str, str, int, Optional[str], Optional[str]]

EXAMPLES = 200  # skipped files listed by name (every one is counted)
PREVIEW = 20
LIST_THREADS = 16  # concurrent ListObjectsV2 calls: each is latency-bound (~50-100 ms on S3)


@dataclass(frozen=True)
class Shard:
    """One unit of listing work: ``kind`` is ``top``/``dir`` (local), ``level``/``prefix`` (S3
    listing) or ``inventory`` (one data file of an S3 Inventory report); ``value`` is a folder
    relative to the root, a key prefix or a data file URI; ``meta`` what the kind needs (JSON)."""

    kind: str
    value: str
    meta: str = "{}"


def plan_shards(
    root_uri: str,
    endpoint_url: Optional[str] = None,
    region: Optional[str] = None,
    manifest_uri: Optional[str] = None,
    max_age_hours: float = 48.0,
) -> list[Shard]:
    """The shards of a store. Raises FileNotFoundError when the root does not exist (a listing),
    ValueError in one line for an inventory manifest that is stale, malformed or for another bucket."""
    if manifest_uri:
        manifest = read_manifest(manifest_uri, root_uri, endpoint_url, region, max_age_hours)
        return [Shard("inventory", uri, json.dumps(manifest.shard_meta())) for uri in manifest.data_files]
    if is_s3(root_uri):
        return _s3_shards(root_uri, endpoint_url, region)
    seeds, dirs = top_level(root_uri)
    meta = json.dumps({"seeds": seeds})
    return [Shard("top", "", meta)] + [Shard("dir", rel, meta) for rel in dirs]


def entries(root_uri: str, shard: Shard, endpoint_url: Optional[str] = None, region: Optional[str] = None):
    """Every entry of one shard: (path, relative path, bytes, skip reason or None, ETag or None)."""
    meta = json.loads(shard.meta)
    if shard.kind in ("top", "dir"):
        seeds = {tuple(s[:2]): s[2] for s in meta["seeds"]}
        return ((p, r, n, why, None) for p, r, n, why in walk(root_uri, shard.value, shard.kind == "top", seeds))
    return _s3_entries(root_uri, shard, endpoint_url, region)


# -- what comes back to the driver ------------------------------------------------------------


@dataclass
class ListingStats:
    """Aggregates of a listing: counts, per split and class, skipped files by reason (the first
    :data:`EXAMPLES` by path named), an order-free digest of every (path, fingerprint), and the
    first rows by path for a preview. Merging two gives the stats of both."""

    images: int = 0
    bytes: int = 0
    per_split: dict = field(default_factory=dict)
    per_class: dict = field(default_factory=dict)  # "split\tlabel" -> images
    skipped: dict = field(default_factory=dict)  # reason -> files
    skipped_examples: list = field(default_factory=list)  # [path, reason], smallest paths
    unparsed: int = 0
    unparsed_examples: list = field(default_factory=list)
    digest: RowDigest = field(default_factory=RowDigest)  # images: (path, fingerprint)
    table_digest: RowDigest = field(default_factory=RowDigest)  # every row, skipped files too
    preview: list = field(default_factory=list)  # [path, label, split, bytes], smallest paths

    def add(self, row: tuple) -> None:
        path, label, split, size, fingerprint, reason = row
        self.table_digest.add(path, fingerprint if reason is None else f"skipped: {reason}")
        if reason is not None:
            self.skipped[reason] = self.skipped.get(reason, 0) + 1
            _keep_smallest(self.skipped_examples, [path, reason], EXAMPLES)
            return
        self.images += 1
        self.bytes += size
        self.digest.add(path, fingerprint)
        if label is None:
            self.unparsed += 1
            _keep_smallest(self.unparsed_examples, [path], 5)
        else:
            self.per_split[split] = self.per_split.get(split, 0) + 1
            key = f"{split}\t{label}"
            self.per_class[key] = self.per_class.get(key, 0) + 1
        _keep_smallest(self.preview, [path, label, split, size], PREVIEW)

    def add_batch(self, batch) -> None:
        """:meth:`add` for an Arrow batch of inventory rows, column-wise."""
        import pyarrow as pa
        import pyarrow.compute as pc

        table = pa.Table.from_batches([batch])
        self.table_digest.add_many(
            table.column("path"),
            pc.coalesce(
                table.column("fingerprint"),
                pc.binary_join_element_wise(pa.scalar("skipped: "), table.column("skipped"), ""),
            ),
        )
        skipped = table.filter(pc.is_valid(table.column("skipped")))
        images = table.filter(pc.is_null(table.column("skipped")))
        for reason, n in _grouped(skipped, ["skipped"]):
            self.skipped[reason[0]] = self.skipped.get(reason[0], 0) + n
        for item in _smallest(skipped, ["path", "skipped"], EXAMPLES):
            _keep_smallest(self.skipped_examples, item, EXAMPLES)
        self.images += images.num_rows
        self.bytes += int(pc.sum(images.column("bytes")).as_py() or 0)
        self.digest.add_many(images.column("path"), images.column("fingerprint"))
        unparsed = images.filter(pc.is_null(images.column("label")))
        self.unparsed += unparsed.num_rows
        for item in _smallest(unparsed, ["path"], 5):
            _keep_smallest(self.unparsed_examples, item, 5)
        for (split, label), n in _grouped(images.filter(pc.is_valid(images.column("label"))), ["split", "label"]):
            self.per_split[split] = self.per_split.get(split, 0) + n
            self.per_class[f"{split}\t{label}"] = self.per_class.get(f"{split}\t{label}", 0) + n
        for item in _smallest(images, ["path", "label", "split", "bytes"], PREVIEW):
            _keep_smallest(self.preview, item, PREVIEW)

    def merge(self, other: "ListingStats") -> "ListingStats":
        self.images += other.images
        self.bytes += other.bytes
        self.unparsed += other.unparsed
        for mine, theirs in ((self.per_split, other.per_split), (self.per_class, other.per_class)):
            for k, v in theirs.items():
                mine[k] = mine.get(k, 0) + v
        for k, v in other.skipped.items():
            self.skipped[k] = self.skipped.get(k, 0) + v
        for mine_l, theirs_l, limit in (
            (self.skipped_examples, other.skipped_examples, EXAMPLES),
            (self.unparsed_examples, other.unparsed_examples, 5),
            (self.preview, other.preview, PREVIEW),
        ):
            for item in theirs_l:
                _keep_smallest(mine_l, item, limit)
        self.digest.merge(other.digest)
        self.table_digest.merge(other.table_digest)
        return self

    def skipped_counts(self) -> dict[str, int]:
        """{reason: files}, most frequent first (ties by reason)."""
        return dict(sorted(self.skipped.items(), key=lambda kv: (-kv[1], kv[0])))

    @property
    def skipped_total(self) -> int:
        return sum(self.skipped.values())

    @property
    def classes(self) -> int:
        return len({k.split("\t", 1)[1] for k in self.per_class})

    def to_json(self) -> str:
        doc = {k: v for k, v in self.__dict__.items() if k not in ("digest", "table_digest")}
        return json.dumps({**doc, "digest": self.digest.to_json(), "table_digest": self.table_digest.to_json()})

    @classmethod
    def from_json(cls, text: str) -> "ListingStats":
        doc = json.loads(text)
        doc["digest"] = RowDigest.from_json(doc["digest"])
        doc["table_digest"] = RowDigest.from_json(doc["table_digest"])
        return cls(**doc)


def _grouped(table, by: list[str]) -> list:
    if not table.num_rows:
        return []
    counts = table.group_by(by).aggregate([([], "count_all")]).to_pydict()
    return [(key, n) for *key, n in zip(*(counts[c] for c in by), counts["count_all"])]


def _smallest(table, columns: list[str], limit: int) -> list:
    if not table.num_rows:
        return []
    import pyarrow.compute as pc

    first = table.take(pc.select_k_unstable(table, limit, [("path", "ascending")])).sort_by("path")
    return [list(r) for r in zip(*(first.column(c).to_pylist() for c in columns))]


def _keep_smallest(items: list, item: list, limit: int) -> None:
    """Keep ``items`` the ``limit`` smallest by first element (sorted): a bounded, deterministic sample."""
    if len(items) >= limit and item[0] >= items[-1][0]:
        return
    import bisect

    bisect.insort(items, item, key=lambda x: x[0])
    del items[limit:]


def row(entry: Entry, fingerprint: str) -> tuple:
    """(path, label, split, bytes, fingerprint, skipped reason) of an entry."""
    path, relative, size, reason, _ = entry
    if reason is not None:
        return (path, None, None, size, None, reason)
    try:
        split, label = parse_image_path(relative)
    except ValueError:
        split, label = None, None  # featurization records it as a reject with the reason
    return (path, label, split, size, fingerprint, None)


def fingerprint(entry: Entry) -> str:
    """What says an image changed, free with the listing: size and ETag on S3 (the MD5 of a
    single-part upload), size, modification and inode change times (ns) locally: a file replaced
    by one of the same size with its mtime restored (``touch -r``, ``cp -p``) still gets a new
    ctime, which no user call can set. No image byte is read, so a scan stays a listing."""
    path, _, size, reason, etag = entry
    if reason is not None:
        return ""
    if etag is not None:
        return f"{size}:etag:{etag.strip(chr(34))}"
    try:
        st = os.stat(path[len("file:") :])
        if not stat.S_ISREG(st.st_mode):
            return f"{size}:gone"
        return f"{size}:mtime_ns:{st.st_mtime_ns}:ctime_ns:{st.st_ctime_ns}"
    except OSError:
        return f"{size}:gone"  # vanished since the listing: featurization rejects it


def rows(root_uri: str, shard: Shard, endpoint_url: Optional[str] = None, region: Optional[str] = None):
    """The table rows of one shard (see :func:`row`)."""
    if shard.kind == "inventory":  # computed column-wise (s3_inventory.inventory_batches)
        for batch in inventory_batches(root_uri, shard.value, json.loads(shard.meta), endpoint_url, region):
            yield from zip(*(column.to_pylist() for column in batch.columns))
        return
    for entry in entries(root_uri, shard, endpoint_url, region):
        yield row(entry, fingerprint(entry))


def list_in_threads(
    root_uri: str,
    shards: list[Shard],
    endpoint_url: Optional[str] = None,
    region: Optional[str] = None,
    keep_rows: bool = False,
) -> tuple[ListingStats, list[tuple]]:
    """All shards listed by a thread pool (the sensor, small stores): the stats, and the rows
    themselves only when asked (``keep_rows``: tests and :func:`inventory.scan`)."""

    def one(shard: Shard) -> tuple[ListingStats, list[tuple]]:
        stats, kept = ListingStats(), []
        for r in rows(root_uri, shard, endpoint_url, region):
            stats.add(r)
            if keep_rows:
                kept.append(r)
        return stats, kept

    total, everything = ListingStats(), []
    with ThreadPoolExecutor(max_workers=LIST_THREADS) as pool:
        for stats, kept in pool.map(one, shards):
            total.merge(stats)
            everything.extend(kept)
    return total, everything


# -- S3 ----------------------------------------------------------------------------------------


def _client(endpoint_url, region):
    import boto3

    return boto3.client("s3", region_name=region, endpoint_url=endpoint_url)


def _bucket_prefix(root_uri: str) -> tuple[str, str]:
    bucket, _, prefix = root_uri.split("://", 1)[1].partition("/")
    prefix = prefix.strip("/")
    return bucket, prefix + "/" if prefix else ""


def _level(client, bucket: str, prefix: str) -> tuple[list[str], bool]:
    """(common prefixes, whether any key or prefix exists) of one delimiter listing."""
    prefixes, anything = [], False
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix, Delimiter="/"):
        prefixes += [p["Prefix"] for p in page.get("CommonPrefixes", [])]
        anything = anything or bool(page.get("Contents") or page.get("CommonPrefixes"))
    return prefixes, anything


def _s3_shards(root_uri: str, endpoint_url, region) -> list[Shard]:
    """``level`` shards (the keys directly under the root and under each split) and one ``prefix``
    shard per ``<split>/<label>/``: the split listings run concurrently."""
    from botocore.exceptions import ClientError

    bucket, prefix = _bucket_prefix(root_uri)
    client = _client(endpoint_url, region)
    try:
        splits, anything = _level(client, bucket, prefix)
        if not anything:  # S3 has no folders: a prefix exists only through its keys
            raise FileNotFoundError(missing_root_message(root_uri))
        with ThreadPoolExecutor(max_workers=LIST_THREADS) as pool:
            labels = list(pool.map(lambda p: _level(client, bucket, p)[0], splits))
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "NoSuchBucket":
            raise FileNotFoundError(missing_root_message(root_uri)) from None
        raise
    shards = [Shard("level", prefix)] + [Shard("level", p) for p in splits]
    return shards + [Shard("prefix", p) for group in labels for p in group]


def _s3_entries(root_uri: str, shard: Shard, endpoint_url, region) -> Iterator[Entry]:
    """Listed with boto3 rather than pyarrow.fs: pyarrow reports every key ending in "/" as a
    directory, so it could not tell an empty folder marker from an object with data in it."""
    from .layout import extension, is_image_name

    bucket, prefix = _bucket_prefix(root_uri)
    client = _client(endpoint_url, region)
    kwargs = {"Delimiter": "/"} if shard.kind == "level" else {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=shard.value, **kwargs):
        for obj in page.get("Contents", []):
            key, size = obj["Key"], int(obj["Size"])
            if key.endswith("/") and size == 0:
                continue  # a folder marker (consoles and pyarrow create them), not a file
            relative = key[len(prefix) :]
            name = relative.rsplit("/", 1)[-1]
            reason = None if is_image_name(name) else f"not an image by name ({extension(name) or 'no extension'})"
            yield f"s3://{bucket}/{key}", relative, size, reason, obj.get("ETag", "")


# -- the inventory table -----------------------------------------------------------------------

WRITE_THREADS = 8
CHUNK_ROWS = 16_384  # rows a shard holds before writing them: bounds memory per thread


def inventory_schema():
    import pyarrow as pa

    return pa.schema(
        [
            ("path", pa.string()),
            ("label", pa.string()),
            ("split", pa.string()),
            ("bytes", pa.int64()),
            ("fingerprint", pa.string()),  # None for a skipped file
            ("skipped", pa.string()),  # why the file is not an image; None for an image
        ]
    )


def list_to_parts(
    root_uri: str,
    shards: list[Shard],
    out_prefix: str,
    endpoint_url: Optional[str] = None,
    region: Optional[str] = None,
    parts_at=None,
) -> ListingStats:
    """Every shard listed by a thread pool, each into its own parquet part
    ``<out_prefix>-<n>.parquet`` written in chunks of :data:`CHUNK_ROWS` rows: whatever the
    number of images, the process holds at most threads x chunk rows, and gets back the stats."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from ..storage.fs import Location, ensure_dir
    from ..storage.parts import part_uri

    location = parts_at or Location()
    schema = inventory_schema()

    def one(n: int) -> ListingStats:
        stats, writer, stream = ListingStats(), None, None
        chunk: list[tuple] = []

        def write_batch(batch) -> None:
            nonlocal writer, stream
            if writer is None:  # a shard with no row writes no file
                uri = part_uri(out_prefix, n)
                fs, path = location.filesystem(uri)
                ensure_dir(fs, path.rsplit("/", 1)[0], uri)
                stream = fs.open_output_stream(path)
                writer = pq.ParquetWriter(
                    stream, schema, compression="snappy", use_dictionary=["label", "split"], write_page_checksum=True
                )
            writer.write_batch(batch)

        def flush() -> None:
            if chunk:
                columns = list(zip(*chunk))
                write_batch(
                    pa.RecordBatch.from_arrays([pa.array(c, t.type) for c, t in zip(columns, schema)], schema=schema)
                )
                chunk.clear()

        try:
            shard = shards[n]
            if shard.kind == "inventory":  # column-wise: report rows come in Arrow batches
                for batch in inventory_batches(root_uri, shard.value, json.loads(shard.meta), endpoint_url, region):
                    stats.add_batch(batch)
                    write_batch(batch)
            else:
                for r in rows(root_uri, shard, endpoint_url, region):
                    stats.add(r)
                    chunk.append(r)
                    if len(chunk) >= CHUNK_ROWS:
                        flush()
                flush()
        finally:
            if writer is not None and stream is not None:
                writer.close()
                stream.close()
        return stats

    total = ListingStats()
    with ThreadPoolExecutor(max_workers=WRITE_THREADS) as pool:
        for stats in pool.map(one, range(len(shards))):
            total.merge(stats)
    return total
