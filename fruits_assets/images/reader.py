"""How a Spark task reads the bytes of its images: local files in turn, S3 objects concurrently."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pyarrow.fs as pafs

from ..storage.fs import Location


class ImageReader:
    """``reader(paths) -> [bytes | OSError]`` in order: local files in turn, S3 objects
    concurrently (small GETs are latency-bound; binaryFile on EMRFS fetches them one by one)."""

    def __init__(self, location: Location, threads: int):
        self._location, self._threads = location, threads
        self._fs: pafs.FileSystem | None = None
        self._pool: ThreadPoolExecutor | None = None

    def _get(self, path: str):
        try:
            if "://" not in path:
                with open(path[len("file:") :] if path.startswith("file:") else path, "rb") as fh:
                    return fh.read()
            assert self._fs is not None
            with self._fs.open_input_stream(path.split("://", 1)[1]) as stream:
                return stream.read()
        except OSError as exc:
            return exc

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
