"""pca_model and image_pca: per-task moments merged on the driver, one eigendecomposition, k from
the variance target; tasks project their row groups and write their own parts."""

import time
from typing import Any

import numpy as np
import pandas as pd
from dagster import (
    AssetCheckResult,
    AssetCheckSpec,
    AssetExecutionContext,
    DataVersion,
    MaterializeResult,
    MetadataValue,
    ResourceParam,
    asset,
)

from ..analysis.keys import fit_key
from ..analysis.pca import PcaModel
from ..analysis.plots import explained_variance_png, markdown_image, scatter_png
from ..names import GROUP, IMAGE_PCA, PCA_MODEL
from ..spark.pca import PCA_SCHEMA, SCATTER_POINTS, fit_pca, project, row_groups
from ..storage.artifacts import ParquetParts, WithFigures
from ..storage.parts import read_back
from . import metadata
from .checks import audit_or_fail
from .resources import FruitsSpark, ImageStore, PublishedOutputs
from .reuse import reuse_or_compute, same_key
from .run_config import PcaConfig

MODEL_CODE_VERSION = "moments-eigh-v1"
PROJECTION_CODE_VERSION = "project-parts-v1"
CHECKS = ["pca_rows_match", "pca_dims", "pca_finite"]


@asset(
    name=PCA_MODEL,
    code_version=MODEL_CODE_VERSION,
    group_name=GROUP,
    kinds={"spark", "numpy"},
    check_specs=[
        AssetCheckSpec(
            "explained_variance_target",
            asset=PCA_MODEL,
            description="the chosen k reaches the explained-variance target",
        )
    ],
)
def pca_model(
    context: AssetExecutionContext,
    config: PcaConfig,
    image_features: ParquetParts,
    published: PublishedOutputs,
    pyspark: FruitsSpark,
    pyspark_step_launcher: ResourceParam[Any],
):
    """PCA fitted on the Training split (all rows if there is none), k from the variance target:
    Spark tasks reduce their row groups to moments, the driver merges them and solves one
    1280 x 1280 eigenproblem. Stored as pca.npz + pca.json (open format, see README)."""
    started = time.perf_counter()
    key = fit_key(image_features.info, config.model_dump())
    previous, _ = published.pca_model() if key else (None, None)
    reused = previous is not None and same_key({"fit_key": key}, previous.extra)
    if reused:
        # The same feature rows and settings give the same PCA: re-emit the stored model.
        assert previous is not None
        model, moments_s, eig_s = previous, 0.0, 0.0
        context.log.info("features unchanged since the last fit: PCA model reused")
    else:
        result = fit_pca(
            pyspark.spark_session,
            list(image_features.files),
            image_features.location(),
            config.target_variance,
            config.max_k,
            config.standardize,
        )
        model, moments_s, eig_s = result.model, result.moments_seconds, result.eig_seconds
        model.extra["fit_key"] = key
    sel = model.selection
    cumulative = np.cumsum(model.explained_variance_ratio).tolist()
    (context.log.info if sel.reached else context.log.warning)(sel.reason)
    curve = explained_variance_png(cumulative, sel.k, sel.target)
    return MaterializeResult(
        value=WithFigures(model, {"explained_variance.png": curve}),
        metadata={
            "k": sel.k,
            "explained_variance": round(sel.explained_variance, 6),
            "target": sel.target,
            "target_reached": sel.reached,
            "selection": sel.reason,
            "standardized": config.standardize,
            "fitted_on": model.fitted_on,
            "fit_rows": model.fit_rows,
            "reused": reused,
            "moments_seconds": round(moments_s, 2),
            "eig_seconds": round(eig_s, 2),
            "fit_seconds": round(time.perf_counter() - started, 2),
            "cumulative_explained_variance": MetadataValue.md(markdown_image(curve, "explained variance")),
        },
        data_version=DataVersion(key or f"unkeyed-{time.time()}"),
        check_results=[
            AssetCheckResult(
                check_name="explained_variance_target",
                passed=sel.reached,
                metadata={"k": sel.k, "explained_variance": sel.explained_variance, "target": sel.target},
                description=sel.reason,
            )
        ],
    )


@asset(
    name=IMAGE_PCA,
    code_version=PROJECTION_CODE_VERSION,
    group_name=GROUP,
    kinds={"spark", "parquet"},
    check_specs=[AssetCheckSpec(name, asset=IMAGE_PCA, blocking=True) for name in CHECKS],
)
def image_pca(
    context: AssetExecutionContext,
    pca_model: PcaModel,
    image_features: ParquetParts,
    images: ImageStore,
    published: PublishedOutputs,
    pyspark: FruitsSpark,
    pyspark_step_launcher: ResourceParam[Any],
):
    """Every image projected on the k principal components: path, label, split, pca float[k].
    Tasks read the feature row groups and write their own parts, as featurization does."""
    k = pca_model.k
    started = time.perf_counter()
    # Same model AND the same feature rows (image_features may have been materialized alone since).
    key = {"fit_key": pca_model.extra.get("fit_key"), "features_key": image_features.info.get("content_key")}
    summary = pd.DataFrame({"rows": [0], "non_finite": [0], "bad_dims": [0], "x": [None], "y": [None], "label": [None]})

    def compute(prefix: str) -> dict:
        nonlocal summary
        summary = project(
            pyspark.spark_session,
            list(image_features.files),
            image_features.location(),
            pca_model,
            prefix,
            published.location(),
        )
        return {}

    out = reuse_or_compute(IMAGE_PCA, context.run_id, key, compute, published)
    files = out.files(published)
    seconds = time.perf_counter() - started
    counts = summary[summary["x"].isna()]
    points = summary[summary["x"].notna()]
    n_rows, non_finite, bad_dims = (int(counts[c].sum()) for c in ("rows", "non_finite", "bad_dims"))
    n_features = sum(u.rows for u in row_groups(list(image_features.files), image_features.location()))
    written = read_back(files, 0, published.location(), column="pca")
    if out.reused:
        n_rows = written.rows  # the committed version: its rows were counted and audited when projected
        points = metadata.sample_points(files, published.location(), SCATTER_POINTS)
    scatter = scatter_png(
        points["x"].tolist(),
        points["y"].tolist(),
        points["label"].fillna("?").tolist(),
        "First two principal components",
        pca_model.explained_variance_ratio[:2],
    )
    checks = [
        AssetCheckResult(
            asset_key=IMAGE_PCA,
            check_name="pca_rows_match",
            passed=n_rows == n_features == written.rows,
            metadata={"pca_rows": n_rows, "feature_rows": n_features, "parquet_rows": written.rows},
        ),
        AssetCheckResult(
            asset_key=IMAGE_PCA,
            check_name="pca_dims",
            passed=bad_dims == 0 and written.values == written.rows * k,
            metadata={"k": k, "rows_with_other_dims": bad_dims, "parquet_values": written.values},
        ),
        AssetCheckResult(
            asset_key=IMAGE_PCA,
            check_name="pca_finite",
            passed=non_finite == 0,
            metadata={"rows_with_nan_or_inf": non_finite},
        ),
    ]
    yield from audit_or_fail(IMAGE_PCA, checks, on_fail=lambda: published.discard(out.prefix) if out.prefix else None)
    yield MaterializeResult(
        asset_key=IMAGE_PCA,
        value=WithFigures(
            out.change(tuple((f.name, str(f.type)) for f in PCA_SCHEMA), PCA_SCHEMA), {"pc1_vs_pc2.png": scatter}
        ),
        metadata={
            "dagster/row_count": n_rows,
            "k": k,
            "reused": out.reused,
            "project_seconds": round(seconds, 2),
            "preview": metadata.preview_parts(files, published.location(), "pca", root=images.path_root()),
            "pc1_vs_pc2": MetadataValue.md(markdown_image(scatter, "PC1 vs PC2")),
        },
    )
