"""An S3 Inventory report in place of a listing (FRUITS_S3_INVENTORY_MANIFEST).

AWS writes the report daily or weekly: a ``manifest.json`` naming data files (CSV, gzipped, or
Parquet) with one row per object. Reading it costs a few GETs instead of one ListObjectsV2 call
per 1,000 keys. The manifest is refused in one line when it is malformed, for another bucket, or
older than FRUITS_S3_INVENTORY_MAX_AGE_HOURS (a stale report would silently miss new images).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Optional
from urllib.parse import unquote_plus

from ..storage.fs import filesystem

FORMATS = ("CSV", "Parquet")
NEEDED = ("key", "size", "etag")  # what an inventory row must give: the path and its fingerprint


class ManifestError(ValueError):
    """A manifest that cannot stand in for a listing (message: one line)."""


def _norm(name: str) -> str:
    return name.strip().lower().replace("_", "")


def _columns(file_format: str, schema: str) -> list[str]:
    """Column names (normalised: ``e_tag``/``ETag`` -> ``etag``) from the manifest's fileSchema:
    ``Bucket, Key, Size, ...`` for CSV, a Parquet message type for Parquet."""
    if file_format == "CSV":
        return [_norm(c) for c in schema.split(",")]
    import re

    return [_norm(m) for m in re.findall(r"(?:required|optional)\s+\w+\s+(\w+)", schema)]


@dataclass(frozen=True)
class Manifest:
    source_bucket: str
    file_format: str
    columns: list[str]
    data_files: list[str]  # s3:// URIs
    created_ms: int

    def shard_meta(self) -> dict:
        return {"format": self.file_format, "columns": self.columns, "bucket": self.source_bucket}


def read_manifest(
    uri: str, root_uri: str, endpoint_url: Optional[str], region: Optional[str], max_age_hours: float
) -> Manifest:
    fs, path = filesystem(uri, endpoint_url, region)
    try:
        with fs.open_input_stream(path) as stream:
            doc = json.loads(stream.read())
    except FileNotFoundError:
        raise ManifestError(f"S3 inventory manifest {uri} not found (FRUITS_S3_INVENTORY_MANIFEST)") from None
    except (OSError, ValueError) as exc:
        raise ManifestError(f"S3 inventory manifest {uri} cannot be read: {str(exc).splitlines()[0]}") from None
    fields: dict[str, type | tuple[type, ...]] = {
        "sourceBucket": str,
        "destinationBucket": str,
        "fileFormat": str,
        "fileSchema": str,
        "creationTimestamp": (str, int),
        "files": list,
    }
    for name, kind in fields.items():
        if not isinstance(doc, dict) or not isinstance(doc.get(name), kind):
            raise ManifestError(f"S3 inventory manifest {uri} is malformed: missing or bad field {name!r}")
    try:
        created = int(doc["creationTimestamp"])
        files = [str(f["key"]) for f in doc["files"]]
    except (KeyError, TypeError, ValueError):
        raise ManifestError(f"S3 inventory manifest {uri} is malformed: bad creationTimestamp or files") from None
    source, file_format, schema = doc["sourceBucket"], doc["fileFormat"], doc["fileSchema"]
    destination = doc["destinationBucket"].split(":::")[-1]
    if file_format not in FORMATS:
        raise ManifestError(f"S3 inventory manifest {uri}: format {file_format} is not one of {', '.join(FORMATS)}")
    columns = _columns(file_format, schema)
    missing = [c for c in NEEDED if c not in columns]
    if missing:
        raise ManifestError(
            f"S3 inventory manifest {uri}: its rows lack {', '.join(missing)} (enable Size and ETag in the "
            "inventory configuration)"
        )
    bucket = root_uri.split("://", 1)[1].split("/", 1)[0] if "://" in root_uri else ""
    if source != bucket:
        raise ManifestError(f"S3 inventory manifest {uri} lists bucket {source}, not the image store's {bucket}")
    age_h = (time.time() * 1000 - created) / 3_600_000
    if age_h > max_age_hours:
        raise ManifestError(
            f"S3 inventory manifest {uri} is {age_h:.0f} h old (FRUITS_S3_INVENTORY_MAX_AGE_HOURS={max_age_hours:g}): "
            "images added since would be missed; point it at a newer report or unset it to list the bucket"
        )
    if not files:
        raise ManifestError(f"S3 inventory manifest {uri} names no data file")
    return Manifest(source, file_format, columns, [f"s3://{destination}/{k}" for k in files], created)


def _batches(fs, path: str, file_format: str, columns: list[str]):
    import pyarrow as pa

    if file_format == "Parquet":
        import pyarrow.parquet as pq

        with fs.open_input_file(path) as fh:
            pf = pq.ParquetFile(fh)
            names = [_norm(n) for n in pf.schema_arrow.names]
            for batch in pf.iter_batches(batch_size=16_384):
                yield pa.RecordBatch.from_arrays(
                    [batch.column(names.index(c)) if c in names else pa.nulls(len(batch)) for c in columns],
                    names=columns,
                )
        return
    import pyarrow.csv as csv

    _CSV_TYPES = {"size": pa.int64(), "islatest": pa.bool_(), "isdeletemarker": pa.bool_()}
    compression = "gzip" if path.endswith(".gz") else None
    with fs.open_input_stream(path, compression=compression) as stream:
        reader = csv.open_csv(
            stream,
            read_options=csv.ReadOptions(column_names=columns, block_size=1 << 22),
            convert_options=csv.ConvertOptions(column_types={c: _CSV_TYPES.get(c, pa.string()) for c in columns}),
        )
        yield from reader


_LAYOUT = r"^(?P<split>[^/]+)/(?P<label>[^/]+)/(?P<file>[^/]+)$"


def inventory_batches(root_uri: str, data_uri: str, meta: dict, endpoint_url: Optional[str], region: Optional[str]):
    """The rows of one data file under the image store's prefix as Arrow batches of the inventory
    table (images/listing.py ``inventory_schema``), computed column-wise: millions of keys cost
    seconds, not minutes. A batch with a key the vectorised rules do not cover (URL escapes in a
    folder name, empty path segments) is computed row by row, by the same code as a listing."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from .layout import image_extensions
    from .listing import fingerprint, inventory_schema, row

    bucket, _, prefix = root_uri.split("://", 1)[1].partition("/")
    prefix = prefix.strip("/")
    prefix = prefix + "/" if prefix else ""
    columns, schema = meta["columns"], inventory_schema()
    extensions = pa.array(sorted(image_extensions()))
    fs, path = filesystem(data_uri, endpoint_url, region)
    for batch in _batches(fs, path, meta["format"], columns):
        if "islatest" in columns:
            batch = batch.filter(pc.fill_null(batch.column(columns.index("islatest")), True))
        if "isdeletemarker" in columns:
            batch = batch.filter(pc.invert(pc.fill_null(batch.column(columns.index("isdeletemarker")), False)))
        keys = batch.column(columns.index("key")).cast(pa.string())
        if meta["format"] == "CSV":  # CSV reports URL-encode their keys
            keys = pa.array([unquote_plus(k) for k in keys.to_pylist()], pa.string())
        sizes = pc.fill_null(batch.column(columns.index("size")).cast(pa.int64()), 0)
        etags = pc.fill_null(batch.column(columns.index("etag")).cast(pa.string()), "")
        keep = pc.and_(
            pc.starts_with(keys, prefix),
            pc.invert(pc.and_(pc.ends_with(keys, "/"), pc.equal(sizes, 0))),  # folder markers
        )
        keys, sizes, etags = keys.filter(keep), sizes.filter(keep), etags.filter(keep)
        if not len(keys):
            continue
        relative = pc.utf8_slice_codeunits(keys, len(prefix))
        paths = pc.binary_join_element_wise(pa.scalar(f"s3://{bucket}/"), keys, "")
        if pc.any(pc.match_substring_regex(relative, r"%[0-9A-Fa-f]{2}|//|^/")).as_py():
            entries = zip(paths.to_pylist(), relative.to_pylist(), sizes.to_pylist(), etags.to_pylist())
            rows = [row(e, fingerprint(e)) for e in ((p, r, n, _by_name_s3(r), t) for p, r, n, t in entries)]
            yield pa.RecordBatch.from_arrays([pa.array(c, f.type) for c, f in zip(zip(*rows), schema)], schema=schema)
            continue
        layout = pc.extract_regex(relative, _LAYOUT)
        ext = pc.utf8_lower(pc.struct_field(pc.extract_regex(relative, r"(?P<ext>\.[^./]*)$"), "ext"))
        is_image = pc.fill_null(pc.is_in(ext, value_set=extensions), False)
        shown_ext = pc.fill_null(ext, "no extension")
        reason = pc.if_else(
            is_image,
            pa.scalar(None, pa.string()),
            pc.binary_join_element_wise(pa.scalar("not an image by name ("), shown_ext, pa.scalar(")"), ""),
        )
        clean = pc.replace_substring(etags, '"', "")
        prints = pc.binary_join_element_wise(pc.cast(sizes, pa.string()), pa.scalar(":etag:"), clean, "")
        none = pa.scalar(None, pa.string())
        yield pa.RecordBatch.from_arrays(
            [
                paths,
                pc.if_else(is_image, pc.struct_field(layout, "label"), none),
                pc.if_else(is_image, pc.struct_field(layout, "split"), none),
                sizes,
                pc.if_else(is_image, prints, none),
                reason,
            ],
            schema=schema,
        )


def _by_name_s3(relative: str):
    from .local_walk import _by_name

    return _by_name(relative.rsplit("/", 1)[-1])
