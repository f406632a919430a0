"""Run configuration of the assets, with the range of every field, and its check at run start.

Dagster validates pydantic constraints only when a step starts, i.e. after the upstream steps
(and Spark) did their work. :func:`check_run_config` applies the same models to the whole run
config as soon as the run starts (the IO manager's setup), so a bad value costs one line and no
work.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from dagster import Config
from pydantic import Field, ValidationError

from .. import names, settings


class FeatureModelConfig(Config):
    weights: str = Field(
        default=settings.weights(),
        min_length=1,
        description="imagenet | random | auto | local weights file | s3:// URI (env FRUITS_WEIGHTS)",
    )
    precision: Literal["fp32", "int8"] = Field(
        default="fp32",
        description="fp32: the float model (default, bit-compatible with the P8 recipe); int8: full-integer "
        "post-training quantization calibrated on a seeded sample of the images (FRUITS_CALIBRATION_IMAGES), "
        "faster on CPUs with 8-bit dot products, features at cosine ~0.9 of fp32 (README, 'Precision')",
    )


class FeaturizeConfig(Config):
    batch_size: int = Field(default=1, ge=1, le=256, description="images per LiteRT invocation")
    arrow_batch_rows: int = Field(
        default=256, ge=1, le=100_000, description="images per batch a task reads and featurizes"
    )
    interpreter_threads: int = Field(default=1, ge=1, le=64, description="LiteRT threads per Spark task slot")
    read_threads: int = Field(default=16, ge=1, le=256, description="concurrent S3 GETs per task (s3:// images only)")
    full_refresh: bool = Field(default=False, description="featurize every image again, reusing nothing")


class PcaConfig(Config):
    target_variance: float = Field(
        default=0.95, gt=0.0, le=1.0, description="smallest k reaching this explained variance (0 < t <= 1)"
    )
    max_k: int = Field(default=512, ge=1, le=4096, description="upper bound on k (reported when it stops the target)")
    standardize: bool = Field(default=False, description="StandardScaler (mean 0, unit variance) before PCA")


PROBE_TRAIN_ROWS_PER_CLASS = 1000


class ProbeConfig(Config):
    features: Literal["image_pca", "image_features"] = Field(
        default="image_pca",
        description="which vectors the probe classifies: the PCA projection or the raw 1280-d features",
    )
    reg_param: float = Field(default=1e-3, ge=0.0, le=10.0, description="L2 regularization of the logistic regression")
    max_iter: int = Field(default=100, ge=1, le=1000, description="L-BFGS iterations at most")
    tol: float = Field(
        default=1e-4,
        gt=0.0,
        le=0.1,
        description="convergence tolerance (Spark's default 1e-6 costs 40 % more iterations "
        "for the same accuracy here)",
    )
    max_train_rows_per_class: int = Field(
        default=PROBE_TRAIN_ROWS_PER_CLASS,
        ge=0,
        le=1_000_000,
        description="training rows kept per class, a seeded choice (0 = all): bounds the probe's cost "
        "whatever the number of images (docs/performance.md: what it costs in accuracy)",
    )
    seed: int = Field(
        default=0,
        ge=0,
        le=2**31 - 1,
        description="seed of the 80/20 split (data without a Test split) and of the per-class cap",
    )


# op name -> its config model (the op of a multi-asset is named after the function)
CONFIG_BY_OP: dict[str, type[Config]] = {
    names.FEATURE_MODEL: FeatureModelConfig,
    names.IMAGE_FEATURES: FeaturizeConfig,  # the multi-asset's op is named after it
    names.PCA_MODEL: PcaConfig,
    names.FEATURE_PROBE: ProbeConfig,
}


def _describe(model: Any, field: str) -> str:
    info = model.model_fields.get(field)
    if info is None:
        return f"unknown field; allowed: {', '.join(model.model_fields)}"
    bounds = [
        f"{name} {getattr(m, attr)}"
        for m in info.metadata
        for attr, name in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<"), ("min_length", "length >="))
        if getattr(m, attr, None) is not None
    ]
    kind = getattr(info.annotation, "__name__", info.annotation)
    return f"allowed: {kind}{' ' + ', '.join(bounds) if bounds else ''} ({info.description})"


def check_run_config(run_config: Mapping[str, Any] | None) -> None:
    """Raise :class:`settings.SettingsError` naming the first bad field, its value and what is allowed."""
    ops: Mapping[str, Any] = (run_config or {}).get("ops") or {}
    for op, model in CONFIG_BY_OP.items():
        values = (ops.get(op) or {}).get("config") or {}
        try:
            model(**values)
        except ValidationError as exc:
            err = exc.errors()[0]
            field = ".".join(str(p) for p in err["loc"]) or "?"
            value = values.get(field, err.get("input"))
            raise settings.SettingsError(f"{op}.{field}={value!r}: {err['msg']}; {_describe(model, field)}") from None
