"""feature_model: MobileNetV2 headless built with Keras and converted to a LiteRT flatbuffer (fp32,
or int8 calibrated on the inventory's images), reused while its build key (weights, code, TF/Keras
versions, precision and calibration) holds; a conversion this machine already made comes from its
cache (FRUITS_MODEL_CACHE)."""

import os
import time

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    DataVersion,
    MaterializeResult,
    MetadataValue,
    asset,
)

from .. import settings
from ..analysis import calibration
from ..errors import expected_error
from ..images.calibration import read_ranked, scan_inventory
from ..model.cache import ConversionCache
from ..model.native_logs import tensorflow_notices_dropped
from ..names import FEATURE_MODEL, GROUP, RAW_IMAGES
from ..storage.artifacts import FeatureModelArtifact
from .console import ExpectedFailure
from .resources import ImageStore, PublishedOutputs
from .run_config import FeatureModelConfig

CODE_VERSION = "keras-litert-v2"


@asset(
    name=FEATURE_MODEL,
    code_version=CODE_VERSION,
    group_name=GROUP,
    kinds={"tensorflow"},
    # int8 calibrates on the inventory's images: raw_images runs first. Not an input: fp32 does not
    # read it, and feature_model alone must still materialize (a first run, the launchpad).
    deps=[RAW_IMAGES],
    check_specs=[
        AssetCheckSpec(
            "pretrained_weights",
            asset=FEATURE_MODEL,
            description="features come from pretrained weights, not a random init",
        )
    ],
)
def feature_model(
    context: AssetExecutionContext,
    config: FeatureModelConfig,
    images: ImageStore,
    published: PublishedOutputs,
):
    """MobileNetV2 headless (224x224, average pooling, 1280-d) built once with Keras and
    converted to a LiteRT flatbuffer that Spark workers run without TensorFlow: float32 (``fp32``)
    or full-integer int8 calibrated on a seeded sample of the inventory's images (``int8``)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    # TensorFlow only here, imported late: the other assets (and Spark workers) never pay for it.
    from ..model.keras_build import WeightsUnavailable, build_key, build_model, provenance, to_tflite, to_tflite_int8

    started = time.perf_counter()
    with tensorflow_notices_dropped():  # TF's native start-up notices, CUDA probe included
        key = build_key(config.weights)
    stored, stored_version = published.feature_model()
    pixels, record = None, None
    if config.precision != "fp32":
        requested = settings.calibration_images()
        if published.snapshot(RAW_IMAGES) is None:
            raise expected_error(
                ExpectedFailure(
                    "feature_model.precision=int8 calibrates on the inventory's images: materialize raw_images "
                    "first (e.g. --select 'raw_images,feature_model')"
                )
            )
        kept = stored.provenance.get("calibration") if stored is not None else None
        wanted = {e["path"] for e in (kept or {}).get("sample") or []}
        # One streamed pass: the stored sample's current fingerprints and the ranking's first
        # candidates (twice the sample, for images that do not decode); never the whole inventory.
        count, found, ranked = scan_inventory(
            published.batches(RAW_IMAGES, ["path", "fingerprint", "skipped"]),
            images.path_root(),
            wanted,
            2 * requested + 16,
            lambda rel: calibration._rank(calibration.CALIBRATION_SEED, rel),
        )
        if count == 0:
            raise expected_error(ExpectedFailure("int8 calibration: raw_images holds no image"))
        fingerprints = {rel: f for rel, (_, f) in found.items()}
        key = ""
        if calibration.still_stands(kept, fingerprints, requested, count):
            # The stored model's calibration images are all still there, unchanged: keep that
            # calibration (drawing again would change the model and every feature row with it).
            key = build_key(config.weights, config.precision, (kept or {}).get("digest"))
        if stored is None or stored.provenance.get("build_key") != key:
            pixels, entries = read_ranked(found, ranked, requested, images.location())
            if len(pixels) == 0:
                raise expected_error(ExpectedFailure("int8 calibration: no image of the inventory could be decoded"))
            record = calibration.record(entries, requested, count)
            key = build_key(config.weights, config.precision, record["digest"])
            context.log.info(f"int8 calibration sample: {calibration.summary(record)}")
    if stored is not None and stored.provenance.get("build_key") == key:
        # Same weights, same code, same TF/Keras (and for int8 the same calibration): the Keras build
        # and LiteRT conversion would give the same flatbuffer. Re-emit the stored one, byte for byte.
        context.log.info(f"feature model reused from version {stored_version} (build key {key[:12]})")
        return _result(stored, reused_from=stored_version, seconds=time.perf_counter() - started)
    cache = ConversionCache(settings.model_cache_dir())
    cached = cache.get(key)
    if cached is not None:
        # Converted on this machine before (another data root, or an earlier precision of this one).
        model_bytes, recorded = cached
        conversion = dict(recorded.get("conversion") or {}, cache="reused", cache_entry=str(cache.entry(key)))
        for note in recorded.get("notes") or []:
            (context.log.warning if not recorded.get("pretrained") else context.log.info)(note)
        context.log.info(f"feature model taken from the conversion cache {cache.entry(key)} (build key {key[:12]})")
        artifact = FeatureModelArtifact(model_bytes, dict(recorded, conversion=conversion))
        return _result(artifact, reused_from=None, seconds=time.perf_counter() - started)
    try:
        with tensorflow_notices_dropped():
            built = build_model(config.weights)
    except WeightsUnavailable as exc:
        raise expected_error(ExpectedFailure(str(exc))) from None
    for note in built.notes:
        (context.log.warning if not built.pretrained else context.log.info)(note)
    with tensorflow_notices_dropped():
        model_bytes = to_tflite(built.model) if pixels is None else to_tflite_int8(built.model, pixels)
    seconds = time.perf_counter() - started
    built_provenance = provenance(built, config.weights, model_bytes, key, config.precision, record)
    # The cold conversion's cost stays in provenance, in the cache too: what a cache hit saves.
    # auto's fallback to random weights is not cached: a fresh data root tries ImageNet again.
    fallback = config.weights == "auto" and not built.pretrained
    entry = (
        None
        if fallback
        else cache.put(key, model_bytes, dict(built_provenance, conversion={"seconds": round(seconds, 2)}))
    )
    conversion = {"seconds": round(seconds, 2), "cache": "off" if entry is None else "stored"}
    if entry is not None:
        conversion["cache_entry"] = str(entry)
    context.log.info(f"feature model ({config.precision}) built and converted in {seconds:.1f}s")
    artifact = FeatureModelArtifact(model_bytes, dict(built_provenance, conversion=conversion))
    return _result(artifact, reused_from=None, seconds=seconds)


def _result(model: FeatureModelArtifact, reused_from: int | None, seconds: float) -> MaterializeResult:
    p = model.provenance
    return MaterializeResult(
        value=model,
        metadata={
            "weights_source": p.get("weights_source"),
            "weights_uri": p.get("weights_uri"),
            "pretrained": model.pretrained,
            "model_sha256": (p.get("model_sha256") or "")[:12],  # in full in provenance
            "model_mb": round(len(model.model_bytes) / 1e6, 2),
            "precision": p.get("precision", "fp32"),
            "calibration": calibration.summary(p.get("calibration")),
            "reused": reused_from is not None,
            "reused_from_version": "" if reused_from is None else reused_from,
            # How this flatbuffer was obtained: converted now, or taken from the machine's cache.
            "conversion_cache": (p.get("conversion") or {}).get("cache", ""),
            "conversion_seconds": (p.get("conversion") or {}).get("seconds", ""),
            "build_seconds": round(seconds, 2),
            "provenance": MetadataValue.json(p),
        },
        # Downstream assets are stale only when the model itself changed.
        data_version=DataVersion(p.get("model_sha256", "")),
        check_results=[
            AssetCheckResult(
                check_name="pretrained_weights",
                passed=model.pretrained,
                severity=AssetCheckSeverity.WARN,
                description=None
                if model.pretrained
                else "RANDOM weights: features and PCA are only good for testing the pipeline",
                metadata={"weights_source": p.get("weights_source")},
            )
        ],
    )
