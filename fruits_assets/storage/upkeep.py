"""Upkeep of the tables: remove files nothing needs any more, and repair damaged tables.

* :func:`collect` (every run's start and ``fruits-assets gc``): files no retained version
  references, once older than ``min_age_hours``: uncommitted parts of failed or killed runs,
  files of versions beyond the last ``keep_versions``, unreferenced figures, and what the
  version-folder layout left. The age protects a live run: its uncommitted parts are young, and a
  version it reads keeps its files for ``min_age_hours`` after a newer one replaced it.
* :func:`repair` (``fruits-assets repair <asset>``): commits the removal of every committed file
  that is missing, has another size than the log recorded, or fails to read (parquet page
  checksums); the next run recomputes those rows.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from urllib.parse import unquote

import pyarrow.fs as pafs
import pyarrow.parquet as pq

from .fs import join
from .pending import PENDING_DIR
from .tables import FILES_DIR, LEGACY_POINTER, FileEntry, Lake

LEGACY_DIRS = ("_runs", "_staging")  # run ledgers and staged parts of the version-folder layout
KEEP_ON_REPAIR = ("featurizer_key",)  # what stays true of the remaining rows after a repair


@dataclass
class Collected:
    removed: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return f"{len(self.removed)} files removed"


def _age_h(info: pafs.FileInfo) -> float:
    mtime = info.mtime.timestamp() if info.mtime is not None else time.time()
    return (time.time() - mtime) / 3600


def _delete(fs: pafs.FileSystem, path: str) -> bool:
    try:
        fs.delete_file(path)
        return True
    except (FileNotFoundError, OSError):
        return False


def collect(lake: Lake, assets: tuple[str, ...], keep_versions: int, min_age_hours: int) -> Collected:
    """Remove what no retained version needs, once older than ``min_age_hours``."""
    out = Collected()
    fs, root = lake.fs(lake.root)
    for asset in assets:
        table_uri = lake.table_uri(asset)
        _, table = lake.fs(table_uri)
        latest = lake.latest_version(asset)
        if latest is None:
            continue
        keep = list(range(max(0, latest - keep_versions + 1), latest + 1))
        dt = lake.delta_table(asset)
        doomed = dt.vacuum(
            retention_hours=min_age_hours, dry_run=True, enforce_retention_duration=False, full=True, keep_versions=keep
        )
        # A run may have committed meanwhile: never delete what the newest version references.
        newest = lake.snapshot(asset, verify=False) if doomed else None
        live = {f.path for f in newest.files} if newest is not None else set()
        for rel in doomed:
            rel = unquote(rel.split("://", 1)[-1])
            rel = rel[rel.find(table) + len(table) :].lstrip("/") if table in rel else rel
            if rel in live:
                continue
            if _delete(fs, f"{table}/{rel}"):
                out.removed.append(f"{asset}/{rel}")
        referenced = {path for v in keep for path in (lake.commit_info(asset, v).get("figures") or {}).values()}
        selector = pafs.FileSelector(f"{table}/{FILES_DIR}", allow_not_found=True)
        for info in fs.get_file_info(selector):
            rel = f"{FILES_DIR}/{info.base_name}"
            if info.type == pafs.FileType.File and rel not in referenced and _age_h(info) >= min_age_hours:
                _delete(fs, info.path)
                out.removed.append(f"{asset}/{rel}")
        # Commit requests an EMR step left that its Dagster process never committed (cancelled).
        for info in fs.get_file_info(pafs.FileSelector(f"{table}/{PENDING_DIR}", allow_not_found=True)):
            if info.type == pafs.FileType.File and _age_h(info) >= min_age_hours:
                _delete(fs, info.path)
                out.removed.append(f"{asset}/{PENDING_DIR}/{info.base_name}")
        pointer = f"{table}/{LEGACY_POINTER}"
        if fs.get_file_info(pointer).type == pafs.FileType.File:
            _delete(fs, pointer)
            out.removed.append(f"{asset}/{LEGACY_POINTER}")
    for name in LEGACY_DIRS:
        info = fs.get_file_info(f"{root}/{name}")
        if info.type == pafs.FileType.Directory and _age_h(info) >= min_age_hours:
            fs.delete_dir(info.path)
            out.removed.append(name + "/")
    return out


def _readable(fs: pafs.FileSystem, path: str) -> bool:
    try:
        with fs.open_input_file(path) as fh:
            pq.ParquetFile(fh, page_checksum_verification=True).read()
        return True
    except (OSError, ValueError):  # pyarrow's ArrowInvalid is a ValueError
        return False


def damaged_files(lake: Lake, asset: str) -> tuple[int, list[FileEntry]]:
    """(version, committed files that are missing, resized or unreadable) of the newest version."""
    snap = lake.snapshot(asset, verify=False)
    if snap is None:
        return -1, []
    fs, table = lake.fs(snap.uri)
    bad = []
    for entry in snap.files:
        path = f"{table}/{entry.path}"
        info = fs.get_file_info(path)
        if info.type != pafs.FileType.File or info.size != entry.size or not _readable(fs, path):
            bad.append(entry)
    return snap.version, bad


def repair(lake: Lake, asset: str) -> list[str]:
    """Commit the removal of the damaged files of ``asset``; returns their names. The commit keeps
    only what stays true of the remaining rows, so reuse keys no longer match and the next run
    recomputes what the removed files held."""
    version, bad = damaged_files(lake, asset)
    if not bad:
        return []
    previous = lake.commit_info(asset, version)
    info = {k: previous[k] for k in KEEP_ON_REPAIR if k in previous}
    info.update(run_id="repair", asset=asset, repaired=[f.path for f in bad])
    lake.commit(asset, lake.delta_table(asset).schema(), [], bad, version, info)
    return [join(lake.table_uri(asset), f.path) for f in bad]
