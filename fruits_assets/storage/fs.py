"""Where a URI lives: a local path (``file:`` prefix allowed) or ``s3://``, reached through
``pyarrow.fs`` with an explicit endpoint and region (Spark workers get no environment)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pyarrow.fs as pafs


def is_s3(uri: str) -> bool:
    return uri.startswith(("s3://", "s3a://"))


def join(root: str, *parts: str) -> str:
    return "/".join([root.rstrip("/"), *(p.strip("/") for p in parts)])


def filesystem(uri: str, endpoint_url: str | None = None, region: str | None = None) -> tuple[pafs.FileSystem, str]:
    """(pyarrow filesystem, path inside it) for a local path or an s3:// URI."""
    if uri.startswith("file:"):
        uri = uri[len("file:") :]
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
class Location:
    """How a process reaches a store: the S3 endpoint and region, passed explicitly so Spark
    workers need no environment (local paths need neither)."""

    endpoint_url: str | None = None
    region: str | None = None

    def filesystem(self, uri: str) -> tuple[pafs.FileSystem, str]:
        return filesystem(uri, self.endpoint_url, self.region)


def ensure_dir(fs: pafs.FileSystem, path: str, uri: str) -> None:
    """Create a local folder (S3 has no folders: nothing to do)."""
    if not is_s3(uri):
        fs.create_dir(path, recursive=True)


def write_bytes(uri: str, data: bytes, location: Location = Location()) -> None:
    fs, path = location.filesystem(uri)
    ensure_dir(fs, path.rsplit("/", 1)[0], uri)
    with fs.open_output_stream(path) as out:
        out.write(data)


def read_bytes(uri: str, location: Location = Location()) -> bytes:
    fs, path = location.filesystem(uri)
    with fs.open_input_stream(path) as inp:
        return inp.read()
