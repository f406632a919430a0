"""The part format of every table output: parquet files named ``part-*.parquet`` that Spark tasks
(or the driver) write directly into a folder, one per task; names starting with ``_`` or ``.``
are sidecars, which Spark and pyarrow skip when they read the table.

Tables are ``path, label, split, <vector> list<float32>`` (or plain columns for the probe's rows).
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from .fs import Location, ensure_dir

PART_NAME = "part-{:05d}.parquet"
VECTOR_INDEX = 3  # path, label, split, then the vector: footers count its values by column index


def is_data_part(name: str) -> bool:
    """A parquet file of the table, not a sidecar ("_images.parquet")."""
    return name.endswith(".parquet") and not name.startswith(("_", "."))


def list_parts(uri: str, location: Location = Location()) -> list[str]:
    """The data parts of a table folder (paths inside its filesystem), sorted."""
    fs, path = location.filesystem(uri)
    return sorted(
        i.path
        for i in fs.get_file_info(pafs.FileSelector(path))
        if i.type == pafs.FileType.File and is_data_part(i.base_name)
    )


class PartWriter:
    """The parquet part of one task: row groups built from flat float32 buffers (no per-row
    Python objects for the vectors, no dictionary pages for values that never repeat)."""

    def __init__(self, uri: str, location: Location, row_group_rows: int, schema: pa.Schema):
        fs, path = location.filesystem(uri)
        ensure_dir(fs, path.rsplit("/", 1)[0], uri)
        self._stream = fs.open_output_stream(path)
        self._schema = schema  # path, label, split, <vector> list<float32>
        self._writer = pq.ParquetWriter(
            self._stream, schema, compression="snappy", use_dictionary=["path", "label", "split"]
        )
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
            [*columns, pa.ListArray.from_arrays(offsets, pa.array(matrix.reshape(-1)))], schema=self._schema
        )
        self._writer.write_table(table, row_group_size=max(n, 1))
        self.rows += n
        self._pending, self._pending_rows = [], 0

    def close(self) -> int:
        self._flush()
        self._writer.close()
        self._stream.close()
        return self.rows


@dataclass(frozen=True)
class WrittenParts:
    """What the parquet parts under a folder really hold: row and vector-value counts from
    their footers, and a sample of vectors spread over the parts."""

    rows: int
    values: int
    sample: np.ndarray


def read_back(
    uri: str, sample_limit: int = 1000, location: Location = Location(), column: str = "features"
) -> WrittenParts:
    """Open each part under ``uri`` once: footer counts plus the first vectors of each part (none
    when ``sample_limit`` is 0)."""
    fs, _ = location.filesystem(uri)
    parts = list_parts(uri, location)
    rows = values = 0
    chunks, per_part = [], max(1, sample_limit // max(1, len(parts)))
    for part in parts:
        with fs.open_input_file(part) as fh:
            pf = pq.ParquetFile(fh)
            meta = pf.metadata
            rows += meta.num_rows
            values += sum(meta.row_group(g).column(VECTOR_INDEX).num_values for g in range(meta.num_row_groups))
            if meta.num_rows and sample_limit:
                # The first batch only: reading the whole row group costs 3-20x more.
                vectors = next(pf.iter_batches(batch_size=per_part, columns=[column])).column(0)
                flat = vectors.flatten().to_numpy()  # one buffer, no per-row arrays
                chunks.append(flat.reshape(len(vectors), len(flat) // len(vectors)))
    sample = np.concatenate(chunks) if chunks else np.empty((0, 0), dtype=np.float32)
    return WrittenParts(rows, values, sample)


def write_table(staged_uri: str, name: str, table: pa.Table, location: Location = Location()) -> None:
    """A parquet file the driver writes into a staged folder (sidecars, the probe's rows)."""
    fs, dst = location.filesystem(staged_uri)
    ensure_dir(fs, dst, staged_uri)
    pq.write_table(table, f"{dst}/{name}", filesystem=fs)


def _copy(fs: pafs.FileSystem, src: str, dst: str) -> None:
    if isinstance(fs, pafs.LocalFileSystem):
        try:
            os.link(src, dst)  # versions are immutable once published: sharing the inode is safe
            return
        except OSError:
            pass
    fs.copy_file(src, dst)


def carry_parts(previous_uri: str, keep: frozenset | None, staged_uri: str, location: Location = Location()) -> int:
    """Copy the previous version's rows whose path is in ``keep`` into ``staged_uri``: whole parts
    when all their rows are kept, filtered rewrites otherwise (one part in memory at a time);
    ``keep=None`` carries every row. Returns the rows carried. Vectors are copied bit for bit."""
    if keep is not None and not keep:
        return 0
    fs, _ = location.filesystem(previous_uri)
    _, dst = location.filesystem(staged_uri)
    ensure_dir(fs, dst, staged_uri)
    nonce = uuid.uuid4().hex[:6]
    carried = 0
    for n, part in enumerate(list_parts(previous_uri, location)):
        if keep is None:
            with fs.open_input_file(part) as fh:
                kept = total = pq.ParquetFile(fh).metadata.num_rows
            mask = None
        else:
            paths = pq.read_table(part, columns=["path"], filesystem=fs).column("path").to_pylist()
            mask = [p in keep for p in paths]
            kept, total = sum(mask), len(paths)
        if kept == 0:
            continue
        target = f"{dst}/part-c{nonce}-{n:05d}.parquet"
        if kept == total:
            _copy(fs, part, target)
        else:
            table = pq.read_table(part, filesystem=fs).filter(pa.array(mask))
            pq.write_table(
                table, target, filesystem=fs, compression="snappy", use_dictionary=["path", "label", "split"]
            )
        carried += kept
    return carried
