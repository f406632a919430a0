"""Versioned, publish-when-complete storage on a local folder or S3 (through ``pyarrow.fs``).

Each output is written under ``<root>/<asset>/v=<version>/`` and becomes visible only when
``<root>/<asset>/_CURRENT.json`` is replaced to point at it, so a run that fails half-way never
changes what readers see (Spark's ``mode("overwrite")`` alone would delete the last good output
before writing the new one).
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass

import pyarrow.fs as pafs

from .fs import Location, is_s3, join, read_bytes, write_bytes

POINTER = "_CURRENT.json"
# Written into a version folder when it is published: only published versions count towards
# ``keep_versions`` (a half-written version of a killed run must never push a good one out).
# Spark and pyarrow ignore files whose names start with "_".
PUBLISHED_MARKER = "_PUBLISHED.json"
FIGURES_DIR = "_figures"  # "_": Spark and pyarrow skip it when they read a parquet version


@dataclass(frozen=True)
class Published:
    asset: str
    uri: str
    version: str
    info: dict


class VersionedStore:
    """Where asset outputs live: ``root`` is an absolute local folder or ``s3://bucket/prefix``."""

    def __init__(self, root: str, endpoint_url: str | None = None, region: str | None = None, keep_versions: int = 3):
        self.root = root.rstrip("/")
        self.endpoint_url = endpoint_url
        self.region = region
        self.keep_versions = keep_versions

    @property
    def location(self) -> Location:
        return Location(self.endpoint_url, self.region)

    def fs(self, uri: str) -> tuple[pafs.FileSystem, str]:
        return self.location.filesystem(uri)

    def new_version(self, run_id: str) -> str:
        # Sortable by time, unique per run and attempt.
        return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + f"-{run_id[:8]}-{uuid.uuid4().hex[:4]}"

    def version_uri(self, asset: str, version: str) -> str:
        return join(self.root, asset, f"v={version}")

    def write_bytes(self, uri: str, data: bytes) -> None:
        write_bytes(uri, data, self.location)

    def read_bytes(self, uri: str) -> bytes:
        return read_bytes(uri, self.location)

    def adopt(self, staged_uri: str, uri: str) -> None:
        """Move a staged folder's files to ``uri`` (a new version folder): a rename on a local
        disk, server-side copies then a delete on S3."""
        fs, src = self.fs(staged_uri)
        _, dst = self.fs(uri)
        if not is_s3(uri):
            fs.create_dir(dst.rsplit("/", 1)[0], recursive=True)
            fs.move(src, dst)
            return
        files = [i for i in fs.get_file_info(pafs.FileSelector(src, recursive=True)) if i.type == pafs.FileType.File]
        for info in files:
            fs.copy_file(info.path, dst + info.path[len(src) :])
        fs.delete_dir(src)

    def write_json_atomic(self, uri: str, record: dict) -> None:
        """Replace a small JSON object in one step: a rename locally, one PUT on S3."""
        data = json.dumps(record).encode()
        if is_s3(uri):
            self.write_bytes(uri, data)
            return
        fs, path = self.fs(uri)
        tmp = f"{path}.{uuid.uuid4().hex}.tmp"
        self.write_bytes(tmp, data)
        fs.move(tmp, path)  # rename: atomic on POSIX

    def read_json(self, uri: str) -> dict | None:
        try:
            return json.loads(self.read_bytes(uri))
        except (FileNotFoundError, OSError):
            return None

    def publish(self, asset: str, version: str, info: dict | None = None) -> Published:
        """Point readers of ``asset`` at ``version``; the write of one small object is atomic."""
        uri = self.version_uri(asset, version)
        info = info or {}
        record = {"asset": asset, "uri": uri, "version": version, "published_at": time.time(), "info": info}
        self.write_json_atomic(join(uri, PUBLISHED_MARKER), record)
        self.write_json_atomic(join(self.root, asset, POINTER), record)
        self._prune(asset, version)
        return Published(asset, uri, version, info)

    def versions(self, asset: str) -> list[str]:
        """Every version folder of ``asset``, published or not, oldest first."""
        fs, path = self.fs(join(self.root, asset))
        selector = pafs.FileSelector(path, allow_not_found=True)
        return sorted(
            info.base_name[2:]
            for info in fs.get_file_info(selector)
            if info.type == pafs.FileType.Directory and info.base_name.startswith("v=")
        )

    def is_published_version(self, asset: str, version: str) -> bool:
        fs, path = self.fs(join(self.version_uri(asset, version), PUBLISHED_MARKER))
        return fs.get_file_info(path).type == pafs.FileType.File

    def delete_version(self, asset: str, version: str) -> None:
        fs, path = self.fs(self.version_uri(asset, version))
        try:
            fs.delete_dir(path)
        except FileNotFoundError:
            pass

    def current(self, asset: str) -> Published | None:
        """The published version of ``asset``, or None if it was never materialized here."""
        record = self.read_json(join(self.root, asset, POINTER))
        if record is None:
            return None
        return Published(record["asset"], record["uri"], record["version"], record.get("info", {}))

    def require_current(self, asset: str) -> Published:
        published = self.current(asset)
        if published is None:
            raise FileNotFoundError(f"asset {asset!r} has no published output under {self.root}: materialize it first")
        return published

    def _prune(self, asset: str, current_version: str) -> None:
        """Delete published versions older than the current one beyond ``keep_versions``. Never
        newer ones (another run may be writing them) and never unpublished ones: those belong to
        a live run or are residue of a dead one, which :mod:`fruits_assets.storage.residue` removes."""
        older = [v for v in self.versions(asset) if v < current_version and self.is_published_version(asset, v)]
        for version in older[: max(0, len(older) - (self.keep_versions - 1))]:
            self.delete_version(asset, version)
