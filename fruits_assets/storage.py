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
from typing import Any

import pyarrow.fs as pafs

POINTER = "_CURRENT.json"


def is_s3(uri: str) -> bool:
    return uri.startswith(("s3://", "s3a://"))


def join(root: str, *parts: str) -> str:
    return "/".join([root.rstrip("/"), *(p.strip("/") for p in parts)])


def filesystem(uri: str, endpoint_url: str | None = None, region: str | None = None):
    """(pyarrow filesystem, path inside it) for a local path or an s3:// URI."""
    if is_s3(uri):
        kwargs: dict[str, Any] = {}
        if endpoint_url:
            scheme, _, host = endpoint_url.partition("://")
            kwargs.update(endpoint_override=host, scheme=scheme)
        if region:
            kwargs["region"] = region
        return pafs.S3FileSystem(**kwargs), uri.split("://", 1)[1]
    return pafs.LocalFileSystem(), uri


@dataclass(frozen=True)
class Published:
    asset: str
    uri: str
    version: str
    info: dict


class VersionedStore:
    """Where asset outputs live: ``root`` is an absolute local folder or ``s3://bucket/prefix``."""

    def __init__(self, root: str, endpoint_url: str | None = None, region: str | None = None,
                 keep_versions: int = 3):
        self.root = root.rstrip("/")
        self.endpoint_url = endpoint_url
        self.region = region
        self.keep_versions = keep_versions

    def fs(self, uri: str):
        return filesystem(uri, self.endpoint_url, self.region)

    def new_version(self, run_id: str) -> str:
        # Sortable by time, unique per run and attempt.
        return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + f"-{run_id[:8]}-{uuid.uuid4().hex[:4]}"

    def version_uri(self, asset: str, version: str) -> str:
        return join(self.root, asset, f"v={version}")

    def write_bytes(self, uri: str, data: bytes) -> None:
        fs, path = self.fs(uri)
        fs.create_dir(path.rsplit("/", 1)[0], recursive=True)
        with fs.open_output_stream(path) as out:
            out.write(data)

    def read_bytes(self, uri: str) -> bytes:
        fs, path = self.fs(uri)
        with fs.open_input_stream(path) as inp:
            return inp.read()

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
            fs.copy_file(info.path, dst + info.path[len(src):])
        fs.delete_dir(src)

    def publish(self, asset: str, version: str, info: dict | None = None) -> Published:
        """Point readers of ``asset`` at ``version``; the write of one small object is atomic."""
        uri = self.version_uri(asset, version)
        record = {"asset": asset, "uri": uri, "version": version, "published_at": time.time(),
                  "info": info or {}}
        pointer = join(self.root, asset, POINTER)
        fs, path = self.fs(pointer)
        if is_s3(pointer):
            self.write_bytes(pointer, json.dumps(record).encode())
        else:
            tmp = f"{path}.{uuid.uuid4().hex}.tmp"
            self.write_bytes(tmp, json.dumps(record).encode())
            fs.move(tmp, path)  # rename: atomic on POSIX
        self._prune(asset, version)
        return Published(asset, uri, version, record["info"])

    def current(self, asset: str) -> Published | None:
        """The published version of ``asset``, or None if it was never materialized here."""
        try:
            record = json.loads(self.read_bytes(join(self.root, asset, POINTER)))
        except (FileNotFoundError, OSError):
            return None
        return Published(record["asset"], record["uri"], record["version"], record.get("info", {}))

    def require_current(self, asset: str) -> Published:
        published = self.current(asset)
        if published is None:
            raise FileNotFoundError(
                f"asset {asset!r} has no published output under {self.root}: materialize it first"
            )
        return published

    def _prune(self, asset: str, current_version: str) -> None:
        """Delete versions older than the current one beyond ``keep_versions`` (never newer ones:
        another run may be writing them)."""
        fs, path = self.fs(join(self.root, asset))
        selector = pafs.FileSelector(path, allow_not_found=True)
        versions = sorted(
            info.base_name[2:] for info in fs.get_file_info(selector)
            if info.type == pafs.FileType.Directory and info.base_name.startswith("v=")
        )
        older = [v for v in versions if v < current_version]
        for version in older[: max(0, len(older) - (self.keep_versions - 1))]:
            fs.delete_dir(f"{path}/v={version}")
