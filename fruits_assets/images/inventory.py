"""What is under an image store root: the images, and every other file with why it was left out.

Pure listing logic (no Dagster, no Spark). Each file under the root lands in exactly one of
:attr:`Scan.images` and :attr:`Scan.skipped`, so counts reconcile with what a user sees on disk.
"""

from __future__ import annotations

import errno
import os
import stat
from collections import deque
from dataclasses import dataclass
from typing import Iterator, Optional

import pandas as pd

from ..storage.fs import is_s3
from .layout import extension, is_image_name, parse_image_path

IMAGE_COLUMNS = ["path", "label", "split", "bytes", "fingerprint"]
SKIPPED_COLUMNS = ["path", "reason"]

NOT_UTF8 = "file name is not valid UTF-8"
DANGLING = "dangling symlink"


@dataclass(frozen=True)
class Scan:
    """``images``: path, label, split, bytes (label and split None when the file is not at
    ``<split>/<label>/<file>``: featurization rejects it with that reason), sorted by path.
    ``skipped``: path, reason (string dtype), sorted by path. Paths are ``file:/abs/...`` or
    ``s3://bucket/key``; undecodable bytes in local names are shown as ``\\xNN``."""

    images: pd.DataFrame
    skipped: pd.DataFrame

    def skipped_counts(self) -> dict[str, int]:
        """{reason: number of files}, most frequent first (ties by reason)."""
        return skipped_counts(self.skipped)


def skipped_counts(skipped: pd.DataFrame) -> dict[str, int]:
    """{reason: number of files} of a ``skipped`` frame, most frequent first (ties by reason)."""
    counts = skipped["reason"].value_counts()
    return {str(reason): int(n) for reason, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))}


def listing_digest(images: pd.DataFrame) -> str:
    """One digest of every (path, fingerprint): equal digests, same images (the sensor's cursor,
    raw_images' data version)."""
    import hashlib

    digest = hashlib.sha256()
    for path, fingerprint in zip(images["path"], images["fingerprint"]):  # scan() sorts by path
        digest.update(f"{path}\0{fingerprint}\n".encode())
    return digest.hexdigest()


def missing_root_message(root_uri: str) -> str:
    return (
        f"image store {root_uri} does not exist (set FRUITS_IMAGES_DIR, or run "
        f"`python -m fruits_assets.images.sample_data {root_uri}`)"
    )


def scan(root_uri: str, endpoint_url: Optional[str] = None, region: Optional[str] = None) -> Scan:
    """Every file under ``root_uri`` (a local folder, ``file:/...`` or ``s3://bucket/prefix``),
    classified. Raises FileNotFoundError when the root does not exist; an existing root without
    files gives two empty frames (whether that is an error is the caller's call)."""
    if is_s3(root_uri):
        entries = _scan_s3(root_uri, endpoint_url, region)
    else:
        entries = _scan_local(root_uri)
    images, skipped = [], []
    for path, relative, size, reason, *etag in entries:
        if reason is not None:
            skipped.append((path, reason))
            continue
        try:
            split, label = parse_image_path(relative)
        except ValueError:
            split, label = None, None  # featurization records it as a reject with the reason
        images.append((path, label, split, size, _fingerprint(path, size, etag[0] if etag else None)))
    return Scan(images=_images_frame(images), skipped=_skipped_frame(skipped))


def _fingerprint(path: str, size: int, etag: Optional[str]) -> str:
    """What says an image changed, free with the listing: size and ETag on S3 (the MD5 of a
    single-part upload), size, modification and inode change times (ns) locally: a file replaced
    by one of the same size with its mtime restored (``touch -r``, ``cp -p``) still gets a new
    ctime, which no user call can set. No image byte is read, so a scan of 90,483 files stays a
    listing (README, "Incremental runs")."""
    if etag is not None:
        return f"{size}:etag:{etag.strip(chr(34))}"
    try:
        st = os.stat(path[len("file:") :])
        return f"{size}:mtime_ns:{st.st_mtime_ns}:ctime_ns:{st.st_ctime_ns}"
    except OSError:
        return f"{size}:gone"  # vanished since the listing: featurization rejects it


def _images_frame(rows: list) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=IMAGE_COLUMNS)
    frame = frame.astype({"path": object, "label": object, "split": object, "bytes": "int64", "fingerprint": object})
    return frame.sort_values("path", ignore_index=True)


def _skipped_frame(rows: list) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=SKIPPED_COLUMNS).astype("string")
    return frame.sort_values("path", ignore_index=True)


def _by_name(name: str) -> Optional[str]:
    """None for an image name, else why the file is skipped."""
    if is_image_name(name):
        return None
    return f"not an image by name ({extension(name) or 'no extension'})"


# -- local folders ---------------------------------------------------------------------------


def _shown(path: str) -> str:
    """A printable, always-encodable form of a path: bytes that are not UTF-8 become ``\\xNN``."""
    return os.fsencode(path).decode("utf-8", errors="backslashreplace")


def _is_utf8(path: str) -> bool:
    # os.fsdecode maps undecodable bytes to lone surrogates, which Arrow, Parquet and Spark
    # cannot carry: such a path would crash the run later instead of being reported here.
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


_KINDS = [
    (stat.S_ISFIFO, "fifo"),
    (stat.S_ISSOCK, "socket"),
    (stat.S_ISCHR, "character device"),
    (stat.S_ISBLK, "block device"),
]


def _kind(mode: int) -> str:
    return next((name for test, name in _KINDS if test(mode)), f"mode {stat.S_IFMT(mode):o}")


def _scan_local(root_uri: str) -> Iterator[tuple[str, str, int, Optional[str]]]:
    """(path, path relative to the root, bytes, skip reason or None) for each entry that is not
    a directory walked into. Directory symlinks are followed, but each directory (by device and
    inode) is walked once: a link back to an ancestor would otherwise recurse forever, and a
    second link to the same folder would list its files twice."""
    root = os.path.abspath(root_uri[len("file:") :] if root_uri.startswith("file:") else root_uri)
    try:
        root_stat = os.stat(root)
    except FileNotFoundError:
        raise FileNotFoundError(missing_root_message(root_uri)) from None
    if not stat.S_ISDIR(root_stat.st_mode):
        raise NotADirectoryError(f"image store {root_uri} is a file, not a folder of images")

    walked: dict[tuple[int, int], str] = {}  # (st_dev, st_ino) -> relative path it was walked at
    # Real folders before symlinked ones, so a file reachable both ways is listed under its real
    # path (where its <split>/<label> is) and the link is the one reported as already scanned.
    real: list[tuple[str, str, tuple[int, int]]] = [(root, "", (root_stat.st_dev, root_stat.st_ino))]
    linked: deque[tuple[str, str, tuple[int, int]]] = deque()

    def file_path(relative: str) -> str:
        return "file:" + _shown(os.path.join(root, relative))

    while real or linked:
        folder, rel_folder, key = real.pop() if real else linked.popleft()
        if key in walked:
            first = walked[key]
            looped = first == "" or (rel_folder + "/").startswith(first + "/")
            what = "symlink loop" if looped else "duplicate directory"
            yield file_path(rel_folder), rel_folder, 0, f"{what} (already scanned: {_shown(first) or '.'})"
            continue
        walked[key] = rel_folder
        try:
            with os.scandir(folder) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            if rel_folder == "":
                message = f"image store {root_uri} cannot be listed: {exc.strerror or exc}"
                raise OSError(exc.errno, message) from None
            yield file_path(rel_folder), rel_folder, 0, f"unreadable directory ({exc.strerror or exc})"
            continue
        for entry in entries:
            rel = f"{rel_folder}/{entry.name}" if rel_folder else entry.name
            try:
                st = entry.stat()  # follows symlinks
            except FileNotFoundError:
                if entry.is_symlink():
                    yield file_path(rel), rel, 0, DANGLING
                continue  # removed while we were listing: no longer under the root
            except OSError as exc:
                reason = (
                    "symlink loop (the link resolves to itself)"
                    if exc.errno == errno.ELOOP
                    else f"cannot stat ({exc.strerror or exc})"
                )
                yield file_path(rel), rel, 0, reason
                continue
            if stat.S_ISDIR(st.st_mode):
                (linked if entry.is_symlink() else real).append((entry.path, rel, (st.st_dev, st.st_ino)))
            elif not stat.S_ISREG(st.st_mode):
                yield file_path(rel), rel, 0, f"not a regular file ({_kind(st.st_mode)})"
            elif not _is_utf8(os.path.join(root, rel)):
                yield file_path(rel), rel, int(st.st_size), NOT_UTF8
            else:
                yield file_path(rel), rel, int(st.st_size), _by_name(entry.name)


# -- S3 ---------------------------------------------------------------------------------------


def _scan_s3(root_uri: str, endpoint_url: Optional[str], region: Optional[str]):
    """Listed with boto3 rather than pyarrow.fs: pyarrow reports every key ending in "/" as a
    directory, so it could not tell an empty folder marker from an object with data in it."""
    import boto3
    from botocore.exceptions import ClientError

    bucket, _, prefix = root_uri.split("://", 1)[1].partition("/")
    prefix = prefix.strip("/")
    prefix = prefix + "/" if prefix else ""
    client = boto3.client("s3", region_name=region, endpoint_url=endpoint_url)
    found: list[tuple[str, str, int, Optional[str], str]] = []
    any_key = False
    try:
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for obj in page.get("Contents", []):
                any_key = True
                key, size = obj["Key"], int(obj["Size"])
                if key.endswith("/") and size == 0:
                    continue  # a folder marker (consoles and pyarrow create them), not a file
                relative = key[len(prefix) :]
                found.append(
                    (f"s3://{bucket}/{key}", relative, size, _by_name(relative.rsplit("/", 1)[-1]), obj.get("ETag", ""))
                )
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "NoSuchBucket":
            raise FileNotFoundError(missing_root_message(root_uri)) from None
        raise
    # S3 has no folders: a prefix exists only through its keys (a lone marker included).
    if not any_key:
        raise FileNotFoundError(missing_root_message(root_uri))
    return found
