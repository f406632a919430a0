"""Fruits-360 folder layout: ``<split>/<label>/<file>`` and which files count as images."""

from __future__ import annotations

import functools
import os
import re
from typing import NamedTuple
from urllib.parse import unquote

_ESCAPE = re.compile(r"%[0-9A-Fa-f]{2}")


class ImagePath(NamedTuple):
    split: str
    label: str


@functools.lru_cache(maxsize=None)
def image_extensions() -> frozenset[str]:
    """Lower-case extensions (with the dot) of every format this Pillow can open.

    Derived from Pillow rather than listed so the inventory and the decoder agree on what an
    image is: a fixed list silently dropped GIF, BMP, TIFF and WebP files that decode fine.
    Save-only formats (.pdf) are left out: a file Pillow cannot open would only become a reject.
    """
    from PIL import Image

    Image.init()
    return frozenset(ext.lower() for ext, fmt in Image.registered_extensions().items() if fmt in Image.OPEN)


def extension(name: str) -> str:
    """The last extension of a file name, lower-cased with its dot ('' when there is none)."""
    return os.path.splitext(name)[1].lower()


def is_image_name(name: str) -> bool:
    """True when the name's extension, in any letter case, is one Pillow can open."""
    return extension(name) in image_extensions()


def relative_image_path(path: str, root: str) -> str:
    """``path`` relative to the image store ``root`` (both in the same form: ``file:/..``, ``s3://..``)."""
    root = root.rstrip("/") + "/"
    if not path.startswith(root):
        raise ValueError(f"image path {path!r} is not under the image store root {root!r}")
    return path[len(root) :]


def parse_image_path(path: str) -> ImagePath:
    """Split and label of a path relative to the image root: ``<split>/<label>/<file>``, URL-decoded.

    Spark's binaryFile keeps spaces as they are, but paths that went through a URI encoder
    (``input_file_name()``, some S3 tools) carry ``%20``: decoding makes both give one label.
    """
    parts = [p for p in path.replace("\\", "/").split("/") if p]
    if len(parts) != 3:
        raise ValueError(f"image path {path!r} is not <split>/<label>/<file> under the image root")
    split, label = parts[-3], parts[-2]
    if _ESCAPE.search(split) or _ESCAPE.search(label):
        split, label = unquote(split), unquote(label)
    return ImagePath(split=split, label=label)
