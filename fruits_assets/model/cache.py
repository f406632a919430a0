"""This machine's converted feature models, keyed by build key (FRUITS_MODEL_CACHE).

The Keras build and LiteRT conversion cost 10-20 s (int8 more: its calibration runs the float
model); a fresh data root with weights this machine already converted takes the flatbuffer from
here instead. An entry is the flatbuffer and its provenance, verified by sha256 when read: a
damaged or half-written entry is ignored (and converted again), never used.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

MODEL_FILE = "model.tflite"
PROVENANCE_FILE = "provenance.json"


class ConversionCache:
    """Entries under ``folder/<build key>/``; ``folder`` None: no cache (every get misses)."""

    def __init__(self, folder: str | None):
        self.folder = Path(folder) if folder else None

    def entry(self, key: str) -> Path | None:
        return self.folder / key if self.folder else None

    def get(self, key: str) -> tuple[bytes, dict] | None:
        """(model bytes, provenance) stored under ``key``, or None when absent or damaged."""
        where = self.entry(key)
        if where is None:
            return None
        try:
            model = (where / MODEL_FILE).read_bytes()
            provenance = json.loads((where / PROVENANCE_FILE).read_text())
        except (OSError, ValueError):
            return None
        if provenance.get("build_key") != key or hashlib.sha256(model).hexdigest() != provenance.get("model_sha256"):
            return None
        return model, provenance

    def put(self, key: str, model: bytes, provenance: dict) -> Path | None:
        """Store an entry (written to a temporary folder, then renamed: readers never see half of
        one); returns its folder. A cache that cannot be written is not an error: None."""
        where = self.entry(key)
        if where is None or self.folder is None:
            return None
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(prefix=f".{key[:12]}-", dir=self.folder))
            (staging / MODEL_FILE).write_bytes(model)
            (staging / PROVENANCE_FILE).write_text(json.dumps(provenance, indent=2, sort_keys=True))
            if where.exists():  # a damaged entry (get() refused it): replaced
                shutil.rmtree(where, ignore_errors=True)
            try:
                os.replace(staging, where)
            except OSError:  # another process stored the same key first: theirs stands
                for f in staging.iterdir():
                    f.unlink()
                staging.rmdir()
            return where
        except OSError:
            return None
