"""How a Spark task reads the bytes of its images: local files in turn, S3 objects concurrently."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pyarrow.fs as pafs

from ..storage.fs import Location


class TooLarge(Exception):
    """A file larger than the per-file cap: rejected with this reason, never read whole."""


class ImageReader:
    """``reader(paths) -> [bytes | OSError | TooLarge]`` in order: local files in turn, S3 objects
    concurrently (small GETs are latency-bound; binaryFile on EMRFS fetches them one by one).
    At most ``max_bytes`` + 1 bytes are read per file, whatever its size says."""

    def __init__(self, location: Location, threads: int, max_bytes: int = 64 << 20):
        self._location, self._threads, self._max = location, threads, max_bytes
        self._fs: pafs.FileSystem | None = None
        self._pool: ThreadPoolExecutor | None = None

    def _get(self, path: str):
        try:
            if "://" not in path:
                with open(path[len("file:") :] if path.startswith("file:") else path, "rb") as fh:
                    data = fh.read(self._max + 1)
            else:
                assert self._fs is not None
                with self._fs.open_input_stream(path.split("://", 1)[1]) as stream:
                    data = stream.read(self._max + 1)
        except OSError as exc:
            return exc
        if len(data) > self._max:
            return TooLarge(too_large(None, self._max))
        return data

    def __call__(self, paths: list[str]) -> list:
        remote = [p for p in paths if "://" in p]
        if not remote:
            return [self._get(p) for p in paths]
        if self._pool is None:
            self._fs = self._location.filesystem(remote[0])[0]
            self._pool = ThreadPoolExecutor(max_workers=self._threads)
        return list(self._pool.map(self._get, paths))

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()


def too_large(size: int | None, limit: int) -> str:
    """The reason a file is rejected for its size (deterministic: carried over until it changes)."""
    found = f"{size} bytes" if size is not None else "more"
    return f"too large: {found} > {limit} bytes (FRUITS_MAX_IMAGE_MB={limit >> 20})"
