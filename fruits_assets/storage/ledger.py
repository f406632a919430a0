"""What each run wrote and read, kept beside the outputs under ``<root>/_runs/<run_id>/``.

Two guarantees rest on it (README, "What is guaranteed"):

* **Runs never mix.** Within a run an asset is loaded from the version this run produced, or,
  when the run did not produce it, from the version the run first read; ``_CURRENT.json`` is
  consulted once per run and asset, never again (a concurrent run may move it meanwhile).
* **A failed run publishes nothing.** Outputs are written to new version folders and recorded
  here; they are published together only when every asset the run was asked for has been
  written and audited. A run that fails or is killed leaves its versions unpublished, and
  :mod:`fruits_assets.storage.residue` deletes them once the run is known to be dead.

One small JSON object per output, per read and per process: steps of one run that run in
several processes (or on EMR) never write the same object.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pyarrow.fs as pafs

from .fs import join
from .versions import Published, VersionedStore

RUNS_DIR = "_runs"


@dataclass(frozen=True)
class Stored:
    """One output written by a run: its version, where it is, what the writer returned, and the
    outputs published with it (empty while the run still has outputs to write)."""

    version: str
    uri: str
    written: Any
    published: list[Published]


@dataclass(frozen=True)
class RunEntry:
    kind: str  # "out" (written by the run) | "read" (pinned by the run) | "owner"
    asset: str
    record: dict


class RunLedger:
    def __init__(self, store: VersionedStore, run_id: str):
        self.store, self.run_id = store, run_id

    @property
    def uri(self) -> str:
        return join(self.store.root, RUNS_DIR, self.run_id)

    def _entry_uri(self, kind: str, asset: str) -> str:
        return join(self.uri, f"{kind}-{asset}.json")

    def register_owner(self) -> None:
        """Which process runs this: the next run marks it failed if that process is gone."""
        record = {"host": socket.gethostname(), "pid": os.getpid(), "at": time.time()}
        self.store.write_json_atomic(join(self.uri, f"owner-{socket.gethostname()}-{os.getpid()}.json"), record)

    def store_output(self, asset: str, kind: str, write: Callable[[str], Any], run_assets: set[str]) -> Stored:
        """The publish protocol for one output: record it as being written (so the residue of a
        kill is always findable), ``write(uri)`` it into a new version folder, record it written,
        then publish every output of this run together once all of ``run_assets`` are written."""
        version = self.store.new_version(self.run_id)
        uri = self.store.version_uri(asset, version)
        info = {"run_id": self.run_id}
        self._record_out(asset, version, info, "writing")
        written = write(uri)
        self._record_out(asset, version, {"kind": kind, **info}, "written")
        return Stored(version, uri, written, self._publish_if_complete(run_assets))

    def _record_out(self, asset: str, version: str, info: dict, state: str) -> None:
        self.store.write_json_atomic(self._entry_uri("out", asset), {"version": version, "info": info, "state": state})

    def produced(self, asset: str) -> Published | None:
        record = self.store.read_json(self._entry_uri("out", asset))
        if record is None or record.get("state") != "written":
            return None
        return Published(
            asset, self.store.version_uri(asset, record["version"]), record["version"], record.get("info", {})
        )

    def lookup(self, asset: str) -> Published | None:
        """What this run wrote or read of ``asset`` (None if neither), without recording anything."""
        own = self.produced(asset)
        if own is not None:
            return own
        pinned = self.store.read_json(self._entry_uri("read", asset))
        return None if pinned is None else Published(asset, pinned["uri"], pinned["version"], pinned.get("info", {}))

    def pinned_input(self, asset: str) -> Published:
        """The version of ``asset`` this run reads: its own output, else the version it read first."""
        own = self.produced(asset)
        if own is not None:
            return own
        pinned = self.store.read_json(self._entry_uri("read", asset))
        if pinned is not None:
            return Published(asset, pinned["uri"], pinned["version"], pinned.get("info", {}))
        current = self.store.require_current(asset)
        self.store.write_json_atomic(
            self._entry_uri("read", asset), {"uri": current.uri, "version": current.version, "info": current.info}
        )
        return current

    def entries(self) -> list[RunEntry]:
        fs, path = self.store.fs(self.uri)
        infos = fs.get_file_info(pafs.FileSelector(path, allow_not_found=True))
        out = []
        for info in infos:
            name = info.base_name
            if info.type != pafs.FileType.File or not name.endswith(".json"):
                continue
            kind, _, asset = name[: -len(".json")].partition("-")
            record = self.store.read_json(join(self.uri, name))
            if record is not None:
                out.append(RunEntry(kind, asset, record))
        return out

    def _publish_if_complete(self, expected_assets: set[str]) -> list[Published]:
        """Publish every output of this run once all ``expected_assets`` are written; returns
        what was published (nothing while some are still to come)."""
        written = {e.asset: e.record for e in self.entries() if e.kind == "out" and e.record.get("state") == "written"}
        if not expected_assets <= set(written):
            return []
        published = [
            self.store.publish(asset, record["version"], record.get("info", {}))
            for asset, record in sorted(written.items())
        ]
        self.store.write_json_atomic(join(self.uri, "published.json"), {"at": time.time(), "assets": sorted(written)})
        return published

    def delete(self) -> None:
        fs, path = self.store.fs(self.uri)
        try:
            fs.delete_dir(path)
        except FileNotFoundError:
            pass


def run_ids(store: VersionedStore) -> list[str]:
    fs, path = store.fs(join(store.root, RUNS_DIR))
    return sorted(
        i.base_name
        for i in fs.get_file_info(pafs.FileSelector(path, allow_not_found=True))
        if i.type == pafs.FileType.Directory
    )
