"""MobileNetV2 feature extractor built with Keras and converted for LiteRT (driver side only).

Imports TensorFlow lazily: Spark workers never import this module.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .. import settings
from ..images.decode import INPUT_SIZE

FEATURE_DIM = 1280
RANDOM_SEED = 1234
PRECISIONS = ("fp32", "int8")
# Bump when the int8 conversion changes (converter options, calibration input): int8 models stored
# under another recipe are converted again, and their feature rows recomputed.
INT8_CODE_VERSION = "full-integer-ptq-v1"
# Layers int8 keeps in float: the first bottleneck block (its depthwise convolution has by far the
# largest quantization error per the TFLite quantization debugger: per-channel weight ranges of a
# pretrained MobileNetV2 differ by orders of magnitude there). With a pretrained backbone it moves the
# features' cosine to fp32 from 0.915 to 0.990 for ~5 % of the int8 speed; keeping the last block in
# float instead did not help (0.916). Measured: docs/performance.md, "int8".
INT8_FLOAT_LAYERS: tuple[str, ...] = ("expanded_conv_",)


class WeightsUnavailable(RuntimeError):
    """The requested weights could not be obtained (e.g. no network for ImageNet)."""


@dataclass
class BuiltModel:
    """A Keras model plus where its weights came from."""

    model: Any
    weights_source: str  # imagenet | random | file | s3
    weights_uri: str
    weights_sha256: str | None
    pretrained: bool
    notes: list[str] = field(default_factory=list)


def _keras():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    return keras


def _architecture(keras, weights: str | None):
    return keras.applications.MobileNetV2(
        input_shape=(INPUT_SIZE, INPUT_SIZE, 3), include_top=False, pooling="avg", weights=weights
    )


def sha256_file(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def seeded_random_model(seed: int = RANDOM_SEED):
    """MobileNetV2 with a seeded, non-degenerate random init.

    Keras' default init shrinks activations layer after layer until features are ~1e-11; He-scaled
    kernels keep their variance, and each BatchNorm's moving statistics are calibrated on a fixed
    random batch so every block sees unit-scale inputs, like a trained network does.
    """
    keras = _keras()
    keras.utils.set_random_seed(seed)
    model = _architecture(keras, None)
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        kernel = getattr(layer, "depthwise_kernel", None) or getattr(layer, "kernel", None)
        if kernel is not None:
            shape = tuple(kernel.shape)
            if layer.__class__.__name__ == "DepthwiseConv2D":
                fan_in = shape[0] * shape[1]
            else:
                fan_in = int(np.prod(shape[:-1]))
            kernel.assign(rng.normal(0.0, np.sqrt(2.0 / fan_in), size=shape).astype("float32"))
    _calibrate_batchnorm(keras, model, rng)
    return model


def _calibrate_batchnorm(keras, model, rng) -> None:
    """Set each BatchNorm's moving mean/variance to the statistics of its input on a fixed batch."""
    import tensorflow as tf

    batch = rng.uniform(-1.0, 1.0, size=(8, INPUT_SIZE, INPUT_SIZE, 3)).astype("float32")
    # Smooth the noise so the batch looks like images (spatially correlated), not white noise.
    batch = tf.nn.avg_pool2d(batch, 9, 1, "SAME").numpy() * 3.0
    bn_layers = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    for bn in bn_layers:
        probe = keras.Model(model.input, bn.input)
        x = probe(batch, training=False).numpy()
        axes = tuple(range(x.ndim - 1))
        bn.moving_mean.assign(x.mean(axis=axes))
        bn.moving_variance.assign(x.var(axis=axes) + 1e-3)


def _download_s3(uri: str) -> str:
    import boto3

    bucket, _, key = uri[len("s3://") :].partition("/")
    suffix = "".join(os.path.basename(key).partition(".")[1:]) or ".weights.h5"
    local = os.path.join(tempfile.mkdtemp(prefix="fruits-weights-"), "weights" + suffix)
    boto3.client("s3", endpoint_url=settings.s3_endpoint_url()).download_file(bucket, key, local)
    return local


def build_model(weights: str) -> BuiltModel:
    """Build the headless MobileNetV2 (224x224, avg pooling, 1280-d) from a weights setting.

    ``weights``: ``imagenet`` (Keras download/cache), ``random`` (seeded), ``auto`` (imagenet when
    obtainable, else random with a loud warning), a local weights file, or an ``s3://`` URI.
    """
    keras = _keras()
    if weights == "imagenet":
        try:
            model = _architecture(keras, "imagenet")
        except Exception as exc:  # network errors surface as many different types
            raise WeightsUnavailable(f"ImageNet weights could not be loaded: {exc}") from exc
        return BuiltModel(model, "imagenet", "keras:imagenet", None, pretrained=True)
    if weights == "random":
        return BuiltModel(
            seeded_random_model(),
            "random",
            f"seeded-random:{RANDOM_SEED}",
            None,
            pretrained=False,
            notes=["RANDOM WEIGHTS: features carry no ImageNet knowledge"],
        )
    if weights == "auto":
        try:
            built = build_model("imagenet")
            built.notes.append("auto: ImageNet weights obtained")
            return built
        except WeightsUnavailable as exc:
            # Said loudly by the asset (a WARNING per note, and the pretrained_weights check).
            built = build_model("random")
            built.notes.append(f"auto: fell back to random weights because: {exc}")
            return built
    source = "s3" if weights.startswith("s3://") else "file"
    local = _download_s3(weights) if source == "s3" else weights
    if not os.path.exists(local):
        raise WeightsUnavailable(f"weights file {weights} does not exist (FRUITS_WEIGHTS or feature_model.weights)")
    model = _architecture(keras, None)
    try:
        model.load_weights(local)
    except Exception as exc:  # h5py/keras raise many types for a damaged or foreign file
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise WeightsUnavailable(
            f"weights setting {weights!r} (FRUITS_WEIGHTS or feature_model.weights): {local} is not a "
            f"MobileNetV2 weights file Keras can load ({type(exc).__name__}: {first})"
        ) from None
    return BuiltModel(model, source, weights, sha256_file(local), pretrained=True)


def with_preprocessing(model):
    """Wrap the feature model so it takes raw uint8 RGB pixels and scales them itself.

    ``x / 127.5 - 1`` is exactly ``mobilenet_v2.preprocess_input``; inside the graph it costs
    nothing, whereas in the Spark worker it was 1.4 ms/image of NumPy (measured, benchmarks/).
    """
    keras = _keras()
    pixels = keras.Input(shape=(INPUT_SIZE, INPUT_SIZE, 3), dtype="uint8", name="pixels")
    scaled = keras.layers.Rescaling(1.0 / 127.5, offset=-1.0, name="preprocess_input")(pixels)
    return keras.Model(pixels, model(scaled), name="mobilenet_v2_features")


def to_tflite(model) -> bytes:
    """Convert to a LiteRT flatbuffer taking uint8 pixels (float32 weights, no quantization)."""
    import contextlib
    import io

    import tensorflow as tf

    # The converter exports a SavedModel first and prints every captured tensor (hundreds of lines).
    with contextlib.redirect_stdout(io.StringIO()):
        return tf.lite.TFLiteConverter.from_keras_model(with_preprocessing(model)).convert()


def to_tflite_int8(model, calibration: np.ndarray, float_layers: tuple[str, ...] | None = None) -> bytes:
    """Full-integer post-training quantization: int8 weights (per channel) and int8 activations,
    whose ranges come from running the float model on ``calibration`` (uint8 pixels, N x 224 x 224
    x 3, what the pipeline feeds). The input stays uint8 pixels, the output float32 features: the
    workers' code and the table's schema do not change. XNNPACK runs the int8 convolutions with 8-bit
    dot-product kernels (VNNI on x86, SDOT on Graviton): less work per multiply than FP32 FMA.

    ``float_layers``: Keras layer-name prefixes kept in float (selective quantization; default the
    product's choice, INT8_FLOAT_LAYERS), e.g. ``("block_16_", "Conv_1")`` for the last block;
    empty: every op integer (TFLITE_BUILTINS_INT8).
    """
    import contextlib
    import io

    import tensorflow as tf

    if float_layers is None:
        float_layers = INT8_FLOAT_LAYERS  # read at call time: benchmarks/precision.py tries others
    if len(calibration) == 0:
        raise ValueError("int8 calibration needs at least one image")
    pixels = np.asarray(calibration, dtype=np.uint8)

    def representative():
        for i in range(len(pixels)):
            yield [pixels[i : i + 1]]

    converter = tf.lite.TFLiteConverter.from_keras_model(with_preprocessing(model))
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        # "Statistics for quantized inputs were expected": the uint8 input is cast, not quantized.
        warnings.filterwarnings("ignore", message="Statistics for quantized inputs")
        if not float_layers:
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            return converter.convert()
        # Selective quantization (the quantization debugger's documented way): the calibrated model
        # is the float graph with its ranges, whose ops' output names say which layer they belong to;
        # setting the options quantizes the calibrated model again, without calibrating again.
        debugger = tf.lite.experimental.QuantizationDebugger(converter=converter, debug_dataset=representative)
        names = _op_output_names(debugger.calibrated_model)
        nodes = [name for name in names if any(f"/{prefix}" in name for prefix in float_layers)]
        if not nodes:
            raise ValueError(f"no op of the model matches float_layers={float_layers}")
        debugger.options = tf.lite.experimental.QuantizationDebugOptions(denylisted_nodes=nodes)
        return debugger.get_nondebug_quantized_model()


def _op_output_names(model_bytes: bytes) -> list[str]:
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=model_bytes)
    names = {t["index"]: t["name"] for t in interpreter.get_tensor_details()}
    return [names[o] for op in interpreter._get_ops_details() for o in op["outputs"] if o in names]


def save_weights(model, path: str) -> str:
    """Save weights to ``path`` (must end with ``.weights.h5``); returns the path."""
    model.save_weights(path)
    return path


# Bump when the architecture, the preprocessing baked into the graph or the conversion changes:
# models stored under another code version are rebuilt, never reused.
MODEL_CODE_VERSION = "mobilenetv2-headless-uint8-in-graph-preprocess-v1"
KERAS_IMAGENET_FILE = "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5"


def _weights_fingerprint(weights: str) -> dict:
    """What identifies the weights a setting resolves to, without building anything: a local
    file's sha256 (~30 ms for 9 MB), an S3 object's ETag and size, the Keras cache file for
    imagenet/auto (auto falls back to random when it is absent, so its absence is part of the key)."""
    if weights == "random":
        return {"seed": RANDOM_SEED}
    if weights in ("imagenet", "auto"):
        cached = os.path.join(settings.keras_home(), "models", KERAS_IMAGENET_FILE)
        return {"keras_cache": sha256_file(cached) if os.path.exists(cached) else None}
    if weights.startswith("s3://"):
        import boto3

        bucket, _, key = weights[len("s3://") :].partition("/")
        head = boto3.client("s3", endpoint_url=settings.s3_endpoint_url()).head_object(Bucket=bucket, Key=key)
        return {"etag": head["ETag"], "size": head["ContentLength"]}
    return {"sha256": sha256_file(weights) if os.path.exists(weights) else None}


def quantization(precision: str, float_layers: tuple[str, ...] | None = None) -> dict | None:
    """How a precision is obtained (None for fp32: no quantization), as keys and provenance state it."""
    if float_layers is None:
        float_layers = INT8_FLOAT_LAYERS
    if precision == "fp32":
        return None
    if precision != "int8":
        raise ValueError(f"precision {precision!r} is not one of {', '.join(PRECISIONS)}")
    return {
        "recipe": INT8_CODE_VERSION,
        "method": "full-integer post-training quantization (TFLiteConverter, representative dataset)",
        "weights": "int8 per channel",
        "activations": "int8 per tensor, ranges from the calibration images",
        "float_layers": list(float_layers),
        "input": "uint8 pixels (cast and scaled in float, then quantized)",
        "output": "float32 features (dequantized)",
    }


def build_key(
    weights: str,
    precision: str = "fp32",
    calibration_digest: str | None = None,
    float_layers: tuple[str, ...] | None = None,
) -> str:
    """Same key = same model: weights setting and what it resolves to, model code, TF/Keras versions;
    for int8 also the quantization recipe and the digest of the calibration images. The fp32 key is
    the one stored fp32 models were built under, so they stay valid."""
    import hashlib
    import json

    import keras
    import tensorflow as tf

    doc = {
        "code": MODEL_CODE_VERSION,
        "weights": weights,
        "resolved": _weights_fingerprint(weights),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
    }
    recipe = quantization(precision, float_layers)
    if recipe is not None:
        if not calibration_digest:
            raise ValueError("an int8 build key needs the calibration digest")
        doc["precision"] = {"precision": precision, "recipe": recipe, "calibration": calibration_digest}
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()


def provenance(
    built: BuiltModel,
    weights_setting: str,
    model_bytes: bytes,
    key: str,
    precision: str = "fp32",
    calibration: dict | None = None,
    float_layers: tuple[str, ...] | None = None,
) -> dict:
    """What a stored feature model records about itself (provenance.json)."""
    import keras
    import tensorflow as tf

    from .litert import model_digest

    return {
        "architecture": "MobileNetV2(include_top=False, pooling='avg', input_shape=(224, 224, 3))",
        "feature_dim": FEATURE_DIM,
        "weights_setting": weights_setting,
        "weights_source": built.weights_source,
        "weights_uri": built.weights_uri,
        "weights_sha256": built.weights_sha256,
        "pretrained": built.pretrained,
        "model_sha256": model_digest(model_bytes),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "preprocessing": "Pillow full decode, RGB, resize 224x224 bicubic (Pillow's default); uint8 input "
        "scaled in-graph by x/127.5 - 1 (= mobilenet_v2.preprocess_input)",
        "input": "uint8[batch, 224, 224, 3]",
        "notes": built.notes,
        "build_key": key,
        "precision": precision,
        "quantization": quantization(precision, float_layers),
        "calibration": calibration,
    }
