"""Walking a local image folder one top-level folder at a time (the local shards of a listing).

Directory symlinks are followed, but each directory (by device and inode) is walked once: a link
back to an ancestor would otherwise recurse forever, and a second link to the same folder would
list its files twice. Across shards, the top-level folders are known to every walk (``seeds``), so
a link to another top-level folder is reported rather than walked again; a link to a folder deeper
inside another top-level folder is walked by both (docs/guarantees.md).
"""

from __future__ import annotations

import errno
import os
import stat
from collections import deque
from typing import Iterator, Optional

from .layout import extension, is_image_name

NOT_UTF8 = "file name is not valid UTF-8"
DANGLING = "dangling symlink"


def missing_root_message(root_uri: str) -> str:
    return (
        f"image store {root_uri} does not exist (set FRUITS_IMAGES_DIR, or run "
        f"`python -m fruits_assets.images.sample_data {root_uri}`)"
    )


def _root_path(root_uri: str) -> str:
    return os.path.abspath(root_uri[len("file:") :] if root_uri.startswith("file:") else root_uri)


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


def _by_name(name: str) -> Optional[str]:
    """None for an image name, else why the file is skipped."""
    if is_image_name(name):
        return None
    return f"not an image by name ({extension(name) or 'no extension'})"


_KINDS = [
    (stat.S_ISFIFO, "fifo"),
    (stat.S_ISSOCK, "socket"),
    (stat.S_ISCHR, "character device"),
    (stat.S_ISBLK, "block device"),
]


def _kind(mode: int) -> str:
    return next((name for test, name in _KINDS if test(mode)), f"mode {stat.S_IFMT(mode):o}")


def _root_stat(root_uri: str) -> tuple[str, os.stat_result]:
    root = _root_path(root_uri)
    try:
        root_stat = os.stat(root)
    except FileNotFoundError:
        raise FileNotFoundError(missing_root_message(root_uri)) from None
    if not stat.S_ISDIR(root_stat.st_mode):
        raise NotADirectoryError(f"image store {root_uri} is a file, not a folder of images")
    return root, root_stat


def _list(folder: str, root_uri: str, rel_folder: str):
    try:
        with os.scandir(folder) as it:
            return sorted(it, key=lambda e: e.name)
    except OSError as exc:
        if rel_folder == "":
            message = f"image store {root_uri} cannot be listed: {exc.strerror or exc}"
            raise OSError(exc.errno, message) from None
        raise


def top_level(root_uri: str) -> tuple[list[list], list[str]]:
    """(seeds, shard folders): seeds are [dev, ino, relative path] of the root and of every
    top-level folder walked as a shard (real folders first, so a folder reachable both ways is
    listed under its real path); the shard folders are those relative paths."""
    root, root_stat = _root_stat(root_uri)
    seeds: list[list] = [[root_stat.st_dev, root_stat.st_ino, ""]]
    known = {(root_stat.st_dev, root_stat.st_ino)}
    real: list[tuple[str, tuple[int, int]]] = []
    linked: list[tuple[str, tuple[int, int]]] = []
    for entry in _list(root, root_uri, ""):
        try:
            st = entry.stat()
        except OSError:
            continue  # reported by the top shard
        if stat.S_ISDIR(st.st_mode):
            (linked if entry.is_symlink() else real).append((entry.name, (st.st_dev, st.st_ino)))
    dirs = []
    for name, key in real + linked:
        if key in known:
            continue  # reported by the top shard as a loop or a duplicate
        known.add(key)
        seeds.append([key[0], key[1], name])
        dirs.append(name)
    return seeds, dirs


def walk(root_uri: str, start: str, top: bool, seeds: dict) -> Iterator[tuple[str, str, int, Optional[str]]]:
    """(path, path relative to the root, bytes, skip reason or None) for each entry of one shard:
    ``top``: the files directly under the root (and top-level links already walked elsewhere);
    otherwise everything under the top-level folder ``start``. ``seeds``: {(dev, ino): relative
    path} of the folders other shards walk."""
    root, root_stat = _root_stat(root_uri)

    def file_path(relative: str) -> str:
        return "file:" + _shown(os.path.join(root, relative))

    walked: dict[tuple[int, int], str] = {}
    real: list[tuple[str, str, tuple[int, int]]] = []
    linked: deque[tuple[str, str, tuple[int, int]]] = deque()
    if top:
        real.append((root, "", (root_stat.st_dev, root_stat.st_ino)))
    else:
        folder = os.path.join(root, start)
        st = os.stat(folder)
        key = (st.st_dev, st.st_ino)
        real.append((folder, start, key))
        walked.update({k: v for k, v in seeds.items() if k != key})
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
            listed = _list(folder, root_uri, rel_folder)
        except OSError as exc:
            yield file_path(rel_folder), rel_folder, 0, f"unreadable directory ({exc.strerror or exc})"
            continue
        for entry in listed:
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
                dir_key = (st.st_dev, st.st_ino)
                if top:
                    # Top-level folders are shards of their own; a link to one already walked
                    # (or to the root) is reported here, once.
                    if dir_key in seeds and seeds[dir_key] != entry.name:
                        first = seeds[dir_key]
                        what = "symlink loop" if first == "" else "duplicate directory"
                        yield file_path(rel), rel, 0, f"{what} (already scanned: {_shown(first) or '.'})"
                    continue
                (linked if entry.is_symlink() else real).append((entry.path, rel, dir_key))
            elif not stat.S_ISREG(st.st_mode):
                yield file_path(rel), rel, 0, f"not a regular file ({_kind(st.st_mode)})"
            elif not _is_utf8(os.path.join(root, rel)):
                yield file_path(rel), rel, int(st.st_size), NOT_UTF8
            else:
                yield file_path(rel), rel, int(st.st_size), _by_name(entry.name)
