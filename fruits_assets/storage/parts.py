"""The part format of every table: parquet files that Spark tasks (or the driver) write straight
into the table's folder, ``part-<run>-<nonce>-<n>.parquet``, committed by the step afterwards
(storage/tables.py). Page checksums are written so that readers detect a damaged page.

Tables are ``path, label, split, <vector> list<float32>`` (image_features adds ``fingerprint``
after the vector: what the next incremental run compares with the inventory).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from .fs import Location, ensure_dir

VECTOR_INDEX = 3  # path, label, split, then the vector: footers count its values by column index


def part_uri(prefix: str, n: int) -> str:
    """The file task ``n`` writes under a step's prefix (a retried task rewrites the same file)."""
    return f"{prefix}-{n:05d}.parquet"


class PartWriter:
    """The parquet part of one task: row groups built from flat float32 buffers (no per-row
    Python objects for the vectors, no dictionary pages for values that never repeat)."""

    def __init__(self, uri: str, location: Location, row_group_rows: int, schema: pa.Schema):
        fs, path = location.filesystem(uri)
        ensure_dir(fs, path.rsplit("/", 1)[0], uri)
        self._stream = fs.open_output_stream(path)
        self._schema = schema  # path, label, split, <vector> list<float32>[, more strings]
        self._writer = pq.ParquetWriter(
            self._stream,
            schema,
            compression="snappy",
            use_dictionary=["path", "label", "split"],
            write_page_checksum=True,
        )
        self._row_group_rows = row_group_rows
        self._pending: list[tuple[list[list], np.ndarray]] = []
        self._pending_rows = 0
        self.rows = 0

    def add(self, strings: list[list], features: np.ndarray) -> None:
        """Rows: one list per string column (the schema's order, the vector left out) and their vectors."""
        if len(features):
            self._pending.append((strings, features))
            self._pending_rows += len(features)
        if self._pending_rows >= self._row_group_rows:
            self._flush()

    def _flush(self) -> None:
        if not self._pending:
            return
        matrix = np.concatenate([p[1] for p in self._pending])
        n, dim = matrix.shape
        offsets = pa.array(np.arange(0, (n + 1) * dim, dim, dtype=np.int32))
        columns = [
            pa.array([v for p in self._pending for v in p[0][k]], pa.string()) for k in range(len(self._schema) - 1)
        ]
        columns.insert(VECTOR_INDEX, pa.ListArray.from_arrays(offsets, pa.array(matrix.reshape(-1))))
        table = pa.Table.from_arrays(columns, schema=self._schema)
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
    files: list[str], sample_limit: int = 1000, location: Location = Location(), column: str = "features"
) -> WrittenParts:
    """Open each file (URIs) once: footer counts plus the first vectors of each (none when
    ``sample_limit`` is 0)."""
    rows = values = 0
    chunks, per_part = [], max(1, sample_limit // max(1, len(files)))
    for uri in files:
        fs, part = location.filesystem(uri)
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
