"""LiteRT (TFLite) runtime for the feature model: what Spark workers run. No TensorFlow import."""

from __future__ import annotations

import hashlib

import numpy as np


class LiteRTFeatureExtractor:
    """Runs a converted feature model on fixed-size batches.

    The input tensor is resized to ``batch_size`` once; a short last batch is padded rather than
    resizing again (re-allocation costs more than the padded rows).
    """

    def __init__(self, model_bytes: bytes, batch_size: int = 64, num_threads: int = 1):
        from ai_edge_litert.interpreter import Interpreter

        self.batch_size = batch_size
        self._interpreter = Interpreter(model_content=model_bytes, num_threads=num_threads)
        inp = self._interpreter.get_input_details()[0]
        self._input_index = inp["index"]
        self.input_shape = tuple(int(d) for d in inp["shape"][1:])
        self._interpreter.resize_tensor_input(self._input_index, [batch_size, *self.input_shape])
        self._interpreter.allocate_tensors()
        self._output_index = self._interpreter.get_output_details()[0]["index"]
        self.input_dtype = np.dtype(inp["dtype"])
        self._batch = np.zeros((batch_size, *self.input_shape), dtype=self.input_dtype)
        self.output_dim = int(self._interpreter.get_output_details()[0]["shape"][-1])

    def input_buffer(self) -> np.ndarray:
        """A reusable (batch_size, H, W, C) buffer of the model's input dtype (uint8 pixels)."""
        return self._batch

    def run_buffer(self, n: int) -> np.ndarray:
        """Features of the first ``n`` rows of :meth:`input_buffer`; float32 (n, dim), a copy."""
        self._interpreter.set_tensor(self._input_index, self._batch)
        self._interpreter.invoke()
        return self._interpreter.get_tensor(self._output_index)[:n].copy()

    def __call__(self, images: np.ndarray) -> np.ndarray:
        """Features for any number of images (N, H, W, C) of the input dtype -> float32 (N, dim)."""
        out = np.empty((len(images), self.output_dim), dtype=np.float32)
        for start in range(0, len(images), self.batch_size):
            chunk = images[start : start + self.batch_size]
            self._batch[: len(chunk)] = chunk
            out[start : start + len(chunk)] = self.run_buffer(len(chunk))
        return out


_CACHE: dict[tuple[str, int, int], LiteRTFeatureExtractor] = {}


def model_digest(model_bytes: bytes) -> str:
    return hashlib.sha256(model_bytes).hexdigest()


def cached_extractor(
    model_bytes: bytes, batch_size: int, num_threads: int, digest: str | None = None
) -> LiteRTFeatureExtractor:
    """One interpreter per (model, batch, threads) per Python process (Spark reuses its workers)."""
    key = (digest or model_digest(model_bytes), batch_size, num_threads)
    extractor = _CACHE.get(key)
    if extractor is None:
        _CACHE.clear()  # a new model replaces the old one: keep worker memory flat
        extractor = _CACHE[key] = LiteRTFeatureExtractor(model_bytes, batch_size, num_threads)
    return extractor
