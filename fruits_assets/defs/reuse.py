"""Reuse or compute, once for every asset whose tasks write parts: compare the key of this run's
inputs with the key recorded in the table's newest commit. Equal keys: nothing to do, the
committed version stands (no copy). Otherwise ``compute`` writes new files under a fresh prefix
and the change replaces every file of the version read. A failure deletes what was written."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..storage.artifacts import NewParts
from ..storage.tables import Snapshot
from .resources import PublishedOutputs


@dataclass(frozen=True)
class Staged:
    prefix: str | None  # where the new files are (None: reused)
    reused: bool
    info: dict  # the key plus what ``compute`` returned (or the committed version's record)
    previous: Snapshot | None

    def change(self, columns, schema) -> NewParts:
        """What the IO manager commits: nothing when reused, else the new files replacing the old."""
        read = self.previous.version if self.previous else None
        if self.reused:
            return NewParts(None, columns, schema, read)
        removes = self.previous.files if self.previous else ()
        return NewParts(self.prefix, columns, schema, read, tuple(removes), self.info)

    def files(self, published: PublishedOutputs) -> list[str]:
        """The files of the table once the change is committed (URIs)."""
        if self.reused:
            assert self.previous is not None
            return self.previous.file_uris()
        assert self.prefix is not None
        table = self.prefix.rpartition("/")[0]
        return [f"{table}/{name}" for name in published.lake().written(self.prefix)]


def same_key(key: dict[str, str | None], previous: dict | None) -> bool:
    """Reusable only when every part of the key is known and equal to the previous one's."""
    return (
        previous is not None
        and all(v is not None for v in key.values())
        and all(previous.get(k) == v for k, v in key.items())
    )


def reuse_or_compute(
    asset: str,
    run_id: str,
    key: dict[str, str | None],
    compute: Callable[[str], dict],
    published: PublishedOutputs,
) -> Staged:
    previous = published.snapshot(asset)
    if previous is not None and same_key(key, previous.info):
        return Staged(None, True, previous.info, previous)
    prefix = published.new_prefix(asset, run_id)
    try:
        info = {**compute(prefix), **key}
    except BaseException:
        published.discard(prefix)
        raise
    return Staged(prefix, False, info, previous)
