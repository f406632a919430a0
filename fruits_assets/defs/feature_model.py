"""feature_model: MobileNetV2 headless built with Keras and converted to a LiteRT flatbuffer,
reused while its build key (weights, code, TF/Keras versions) holds."""

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

from ..errors import expected_error
from ..model.native_logs import tensorflow_notices_dropped
from ..names import FEATURE_MODEL, GROUP
from ..storage.artifacts import FeatureModelArtifact
from .console import ExpectedFailure
from .resources import PublishedOutputs
from .run_config import FeatureModelConfig

CODE_VERSION = "keras-litert-v2"


@asset(
    name=FEATURE_MODEL,
    code_version=CODE_VERSION,
    group_name=GROUP,
    kinds={"tensorflow"},
    check_specs=[
        AssetCheckSpec(
            "pretrained_weights",
            asset=FEATURE_MODEL,
            description="features come from pretrained weights, not a random init",
        )
    ],
)
def feature_model(context: AssetExecutionContext, config: FeatureModelConfig, published: PublishedOutputs):
    """MobileNetV2 headless (224x224, average pooling, 1280-d) built once with Keras and
    converted to a LiteRT flatbuffer that Spark workers run without TensorFlow."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    # TensorFlow only here, imported late: the other assets (and Spark workers) never pay for it.
    from ..model.keras_build import WeightsUnavailable, build_key, build_model, provenance, to_tflite

    started = time.perf_counter()
    with tensorflow_notices_dropped():  # TF's native start-up notices, CUDA probe included
        key = build_key(config.weights)
    stored, stored_version = published.feature_model()
    if stored is not None and stored.provenance.get("build_key") == key:
        # Same weights, same code, same TF/Keras: the Keras build and LiteRT conversion (20-40 s)
        # would give the same flatbuffer. Re-emit the stored one, byte for byte.
        context.log.info(f"feature model reused from version {stored_version} (build key {key[:12]})")
        return _result(stored, reused_from=stored_version, seconds=time.perf_counter() - started)
    try:
        with tensorflow_notices_dropped():
            built = build_model(config.weights)
    except WeightsUnavailable as exc:
        raise expected_error(ExpectedFailure(str(exc))) from None
    for note in built.notes:
        (context.log.warning if not built.pretrained else context.log.info)(note)
    with tensorflow_notices_dropped():
        model_bytes = to_tflite(built.model)
    artifact = FeatureModelArtifact(model_bytes, provenance(built, config.weights, model_bytes, key))
    return _result(artifact, reused_from=None, seconds=time.perf_counter() - started)


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
            "reused": reused_from is not None,
            "reused_from_version": "" if reused_from is None else reused_from,
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
