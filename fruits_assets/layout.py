"""Fruits-360 folder layout: ``<split>/<label>/<file>`` and which files count as images."""

from __future__ import annotations

import re
from typing import NamedTuple
from urllib.parse import unquote

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")
_ESCAPE = re.compile(r"%[0-9A-Fa-f]{2}")


class ImagePath(NamedTuple):
    split: str
    label: str


def is_image_name(name: str) -> bool:
    """True for .jpg/.jpeg/.png in any letter case."""
    return name.lower().endswith(IMAGE_EXTENSIONS)


def relative_image_path(path: str, root: str) -> str:
    """``path`` relative to the image store ``root`` (both in the same form: ``file:/..``, ``s3://..``)."""
    root = root.rstrip("/") + "/"
    if not path.startswith(root):
        raise ValueError(f"image path {path!r} is not under the image store root {root!r}")
    return path[len(root):]


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
