"""An order-free digest of (path, fingerprint) rows, added up from partial digests."""

from __future__ import annotations

import numpy as np

MOD = 1 << 128
_KEYS = ("fruits-assets-h1", "fruits-assets-h2")  # SipHash keys (16 bytes): two 64-bit halves
_BUFFER = 8192


def _exact_sum(values: np.ndarray) -> int:
    """The exact sum of uint64 values (halves of 32 bits: no overflow below 2^32 rows)."""
    return (int(np.sum(values >> np.uint64(32), dtype=np.uint64)) << 32) + int(
        np.sum(values & np.uint64(0xFFFFFFFF), dtype=np.uint64)
    )


class RowDigest:
    """An order-free digest of (path, fingerprint) rows: the count and the sum, mod 2^128, of a
    128-bit hash per row (two SipHash-2-4 halves, pandas' vectorised ``hash_array``). Tasks digest
    their own rows and the driver adds the partial digests up, so no process needs every row
    (equal digests: the same rows, up to a 2^-128 accident). Rows added one by one are hashed
    in batches."""

    def __init__(self, count: int = 0, total: int = 0):
        self._count, self._total = count, total
        self._pending: list[str] = []

    def add(self, path: str, fingerprint: str) -> None:
        self._pending.append(f"{path}\0{fingerprint}")
        if len(self._pending) >= _BUFFER:
            self._flush()

    def add_many(self, paths, fingerprints) -> None:
        """Rows given as two sequences (lists or pyarrow/NumPy string arrays), hashed at once."""
        import pyarrow as pa
        import pyarrow.compute as pc

        joined = pc.binary_join_element_wise(pa.array(paths, pa.string()), pa.array(fingerprints, pa.string()), "\0")
        self._hash(joined.to_numpy(zero_copy_only=False))

    def _hash(self, keys: np.ndarray) -> None:
        from pandas.util import hash_array

        if not len(keys):
            return
        high, low = (hash_array(keys, encoding="utf8", hash_key=k, categorize=False) for k in _KEYS)
        self._count += len(keys)
        self._total = (self._total + (_exact_sum(high) << 64) + _exact_sum(low)) % MOD

    def _flush(self) -> None:
        if self._pending:
            pending, self._pending = self._pending, []
            self._hash(np.array(pending, dtype=object))

    @property
    def count(self) -> int:
        self._flush()
        return self._count

    @property
    def total(self) -> int:
        self._flush()
        return self._total

    def merge(self, other: "RowDigest") -> "RowDigest":
        self._flush()
        self._count += other.count
        self._total = (self._total + other.total) % MOD
        return self

    def minus(self, other: "RowDigest") -> "RowDigest":
        """The digest of these rows without ``other``'s (which must be among them)."""
        return RowDigest(self.count - other.count, (self.total - other.total) % MOD)

    def hexdigest(self) -> str:
        return f"{self.count}-{self.total:032x}"

    @classmethod
    def parse(cls, text: str) -> "RowDigest":
        """The inverse of :meth:`hexdigest`."""
        count, total = text.split("-")
        return cls(int(count), int(total, 16))

    def to_json(self) -> list:
        return [self.count, f"{self.total:x}"]

    @classmethod
    def from_json(cls, doc) -> "RowDigest":
        return cls(int(doc[0]), int(doc[1], 16))

    def __eq__(self, other) -> bool:
        return isinstance(other, RowDigest) and (self.count, self.total) == (other.count, other.total)
