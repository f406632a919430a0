"""Keys that say when stored work can be reused: equal key, equal result (sha256 of what the
result depends on, never of the result itself)."""

from __future__ import annotations

import hashlib
import json


def featurizer_key(
    model_sha256: str, code_version: str, precision: str = "fp32", calibration_digest: str | None = None
) -> str:
    """The model plus what prepares its input outside it (decode/resize code, Pillow's version).

    A quantized model also names its precision and calibration images: rows of different precisions
    are never mixed in one table (the model's sha256 already differs; this says why in the key).
    fp32 keeps the key it always had, so its stored rows stay valid."""
    import PIL

    material = f"{model_sha256}|{code_version}|Pillow {PIL.__version__}"
    if precision != "fp32":
        material += f"|{precision}|calibration {calibration_digest}"
    return hashlib.sha256(material.encode()).hexdigest()


def content_key(featurizer_key: str, rows_digest: str) -> str:
    """Same key = same feature rows: the featurizer and the order-free digest of every (path,
    fingerprint) (images/digest.py)."""
    return hashlib.sha256(f"{featurizer_key}|{rows_digest}".encode()).hexdigest()


def fit_key(features_info: dict | None, config: dict) -> str | None:
    """Same key = same PCA: same feature rows (content key) and same PCA settings."""
    if not features_info or "content_key" not in features_info:
        return None
    doc = json.dumps({"features": features_info["content_key"], "config": config}, sort_keys=True)
    return hashlib.sha256(doc.encode()).hexdigest()


def probe_key(features: str, source_info: dict | None, config: dict, code_version: str) -> str | None:
    """Same key = same probe: the same vectors (image_pca's fit and feature keys, or
    image_features' content key), the same probe settings and code."""
    if not source_info:
        return None
    material = {k: source_info.get(k) for k in ("fit_key", "features_key", "content_key")}
    if not any(material.values()):
        return None
    doc = json.dumps({"features": features, "source": material, "config": config, "code": code_version}, sort_keys=True)
    return hashlib.sha256(doc.encode()).hexdigest()
