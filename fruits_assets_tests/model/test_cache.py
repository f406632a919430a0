"""The conversion cache, its settings and the precision's run config (no TensorFlow)."""

import hashlib
import json

import pytest

from fruits_assets import settings
from fruits_assets.model.cache import ConversionCache

pytestmark = pytest.mark.fast


def provenance(model: bytes, key: str) -> dict:
    return {"build_key": key, "model_sha256": hashlib.sha256(model).hexdigest(), "precision": "int8"}


def test_an_entry_is_returned_only_when_intact(tmp_path):
    cache = ConversionCache(str(tmp_path / "cache"))
    assert cache.get("k1") is None
    where = cache.put("k1", b"flatbuffer", provenance(b"flatbuffer", "k1"))
    assert where == tmp_path / "cache" / "k1"
    assert cache.get("k1") == (b"flatbuffer", provenance(b"flatbuffer", "k1"))
    (where / "model.tflite").write_bytes(b"flatbuffeR")  # damaged: never used
    assert cache.get("k1") is None
    (where / "model.tflite").write_bytes(b"flatbuffer")
    (where / "provenance.json").write_text(json.dumps(provenance(b"flatbuffer", "k2")))  # another key's
    assert cache.get("k1") is None
    cache.put("k1", b"flatbuffer", provenance(b"flatbuffer", "k1"))  # a damaged entry is replaced
    assert cache.get("k1") is not None and [p.name for p in (tmp_path / "cache").iterdir()] == ["k1"]
    assert ConversionCache(None).get("k1") is None and ConversionCache(None).put("k1", b"", {}) is None


def test_cache_and_calibration_settings(monkeypatch, tmp_path):
    monkeypatch.delenv("FRUITS_MODEL_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert settings.model_cache_dir() == str(tmp_path / "fruits-assets" / "feature-models")
    monkeypatch.setenv("FRUITS_MODEL_CACHE", "off")
    assert settings.model_cache_dir() is None
    monkeypatch.delenv("FRUITS_CALIBRATION_IMAGES", raising=False)
    assert settings.calibration_images() == 100
    for bad in ("0", "many"):
        monkeypatch.setenv("FRUITS_CALIBRATION_IMAGES", bad)
        with pytest.raises(settings.SettingsError, match="FRUITS_CALIBRATION_IMAGES"):
            settings.calibration_images()


def test_precision_is_checked_when_the_run_starts():
    from fruits_assets.defs.run_config import FeatureModelConfig, check_run_config

    assert FeatureModelConfig().precision == "fp32"
    check_run_config({"ops": {"feature_model": {"config": {"precision": "int8"}}}})
    with pytest.raises(settings.SettingsError, match=r"feature_model.precision='int16': Input should be 'fp32' or"):
        check_run_config({"ops": {"feature_model": {"config": {"precision": "int16"}}}})
