"""An order-free digest of (path, fingerprint) rows, added up from partial digests."""

from __future__ import annotations

import hashlib

MOD = 1 << 128


class RowDigest:
    """An order-free digest of (path, fingerprint) rows: the count and the sum of 128-bit row
    hashes. Tasks digest their own rows and the driver adds the partial digests up, so no
    process needs every row (equal digests: the same rows, up to a 2^-128 accident)."""

    def __init__(self, count: int = 0, total: int = 0):
        self.count, self.total = count, total

    def add(self, path: str, fingerprint: str) -> None:
        h = hashlib.blake2b(f"{path}\0{fingerprint}".encode(), digest_size=16).digest()
        self.count += 1
        self.total = (self.total + int.from_bytes(h, "big")) % MOD

    def merge(self, other: "RowDigest") -> "RowDigest":
        self.count += other.count
        self.total = (self.total + other.total) % MOD
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
