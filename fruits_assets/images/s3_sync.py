"""Upload a local image folder to S3: parallel, idempotent (same size and MD5 = skipped)."""

from __future__ import annotations

import hashlib
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from .layout import is_image_name


@dataclass
class SyncReport:
    uploaded: int = 0
    skipped: int = 0
    bytes_uploaded: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)  # (key, reason)


def _md5(path: Path) -> str:
    h = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def existing_objects(client, bucket: str, prefix: str) -> dict[str, tuple[int, str]]:
    """{key: (size, etag)} for every object under ``prefix``."""
    found: dict[str, tuple[int, str]] = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            found[obj["Key"]] = (int(obj["Size"]), obj["ETag"].strip('"'))
    return found


def sync_images(client, source_dir: str, bucket: str, prefix: str, workers: int = 16) -> SyncReport:
    """Mirror the images under ``source_dir`` to ``s3://bucket/prefix/<same relative path>``.

    Keys keep labels with spaces and non-ASCII characters as they are (boto3 encodes the URL).
    Objects already there with the same size and MD5 (the ETag of a single-part upload; images
    are uploaded single-part) are skipped, so re-running after an interruption only sends the rest.
    """
    root = Path(source_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"FRUITS_IMAGES_DIR={source_dir} is not a folder")
    prefix = prefix.strip("/")
    have = existing_objects(client, bucket, prefix + "/")
    files = sorted(p for p in root.rglob("*") if p.is_file() and is_image_name(p.name))
    report = SyncReport()

    def upload(path: Path) -> tuple[str, int, str | None]:
        key = f"{prefix}/{path.relative_to(root).as_posix()}"
        size = path.stat().st_size
        if key in have and have[key][0] == size and have[key][1] == _md5(path):
            return "skipped", 0, None
        try:
            with open(path, "rb") as fh:
                client.put_object(Bucket=bucket, Key=key, Body=fh, ContentLength=size)
        except Exception as exc:  # recorded, not fatal: the inventory reconciles counts afterwards
            return "failed", 0, f"{key}: {exc}"
        return "uploaded", size, None

    with ThreadPoolExecutor(max_workers=max(1, min(workers, (os.cpu_count() or 1) * 8))) as pool:
        for status, size, error in pool.map(upload, files):
            if status == "skipped":
                report.skipped += 1
            elif status == "uploaded":
                report.uploaded += 1
                report.bytes_uploaded += size
            else:
                report.failed.append(tuple(str(error).split(": ", 1)))  # type: ignore[arg-type]
    return report
