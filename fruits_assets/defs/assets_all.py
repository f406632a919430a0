"""The asset graph: raw_images -> feature_model -> image_features (+ image_rejects) -> pca_model -> image_pca
-> feature_probe.

Assets are transformations only: resources say where images are and how Spark runs, the IO
manager says where outputs go.
"""


import os
import time
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetOut,
    DataVersion,
    Failure,
    MaterializeResult,
    MetadataValue,
    ResourceParam,
    asset,
    multi_asset,
)

from . import tables
from .artifacts import FeatureModelArtifact, ParquetParts, StagedParquet, WithFigures
from .featurize import (
    FEATURES_SCHEMA,
    PART_NAME,
    FeaturizeOptions,
    featurize,
    read_back,
    spark_path_root,
)
from .incremental import (
    FEATURIZED,
    PROBED,
    PROJECTED,
    REJECT_COLUMNS,
    carry_parts,
    content_key,
    featurizer_key,
    fit_key,
    load_previous,
    plan,
    probe_key,
    read_info,
    write_info,
    write_sidecars,
    write_table,
)
from .inventory import listing_digest
from .native_logs import tensorflow_notices_dropped
from .pca_math import PcaModel
from .plots import confusion_png, explained_variance_png, markdown_image, scatter_png
from .probe_metrics import CHANCE_FACTOR, above_chance, evaluate
from .resources import FruitsSpark, ImageStore, PublishedOutputs, StagingArea
from .run_config import FeatureModelConfig, FeaturizeConfig, PcaConfig, ProbeConfig
from .settings import expected_error
from .spark_pca import PCA_SCHEMA, SCATTER_POINTS, fit_pca, project, row_groups
from .spark_probe import VECTOR_COLUMN, fit_probe, native_blas_missing

GROUP = "fruits"
# Bumped when an asset's computation changes: Dagster then marks it and what follows as stale.
CODE_VERSIONS = {"raw_images": "inventory-v2", "feature_model": "keras-litert-v2", "image_features": "incremental-v1",
                 "image_rejects": "incremental-v1", "pca_model": "moments-eigh-v1", "image_pca": "project-parts-v1",
                 "feature_probe": "spark-ml-logreg-v1"}


def audit_or_fail(asset: str, checks: list[AssetCheckResult], on_fail=None):
    """Write-audit-publish: the checks are emitted first (the UI shows each with its metadata);
    if a blocking one failed the step fails before its output reaches the IO manager, so nothing
    is published and readers keep the last good version."""
    failed = [c for c in checks if not c.passed]
    if not failed:
        yield from checks
        return
    if on_fail is not None:
        on_fail()
    yield from checks
    reasons = "; ".join(f"{c.check_name}: {c.description or dict(c.metadata)}" for c in failed)
    raise Failure(f"{asset} not published: blocking check failed ({reasons})",
                  metadata={"failed_checks": [c.check_name for c in failed]})


SKIPPED_LISTED = 200  # skipped files listed by name in raw_images metadata (all are counted)
MIN_FEATURE_SPREAD = 1e-6  # degenerate (default Keras random init) features have std ~5e-12


# ---------------------------------------------------------------- raw_images
@asset(
    code_version=CODE_VERSIONS["raw_images"],
    group_name=GROUP,
    kinds={"parquet", "pandas"},
    check_specs=[AssetCheckSpec("layout_parsed", asset="raw_images",
                                description="every image sits at <split>/<label>/<file>")],
)
def raw_images(context: AssetExecutionContext, images: ImageStore):
    """Inventory of the image store: one row per image file (path, label, split, bytes).

    In the emr deployment with FRUITS_IMAGES_DIR set, the local folder is first synced to S3.
    """
    sync_metadata = {}
    if images.source_dir:
        report = images.sync_from_source()
        context.log.info("synced %s -> %s: %d uploaded, %d already there, %d failed",
                         images.source_dir, images.uri, report.uploaded, report.skipped, len(report.failed))
        if report.failed:
            raise Failure(f"{len(report.failed)} uploads failed, first: {report.failed[0]}",
                          metadata={"failed": MetadataValue.json([list(f) for f in report.failed[:100]])})
        sync_metadata = {"uploaded": report.uploaded, "already_in_s3": report.skipped,
                         "bytes_uploaded": report.bytes_uploaded}
    try:
        scanned = images.scan()
    except (FileNotFoundError, NotADirectoryError, PermissionError) as exc:
        raise expected_error(Failure(str(exc))) from None
    inventory, skipped = scanned.images, scanned.skipped
    skipped_counts = scanned.skipped_counts()
    if skipped_counts:
        # Nothing vanishes silently: every file that is not featurized is counted and listed.
        context.log.warning("%d files under %s are not images and were skipped: %s", len(skipped), images.uri,
                            ", ".join(f"{n} {reason}" for reason, n in skipped_counts.items()))
    if inventory.empty:
        raise expected_error(Failure(
            f"no image files under {images.uri} ({len(skipped)} other files skipped); "
            "expected <split>/<label>/<file> in a format Pillow reads (set FRUITS_IMAGES_DIR)"))
    unparsed = inventory[inventory["label"].isna()]
    context.log.info("%d images, %d classes under %s", len(inventory), inventory["label"].nunique(), images.uri)
    return MaterializeResult(
        value=inventory,
        metadata={
            "dagster/row_count": len(inventory),
            "images_root": MetadataValue.path(images.uri),
            "classes": int(inventory["label"].nunique()),
            "total_mb": round(int(inventory["bytes"].sum()) / 1e6, 2),
            "per_split": {str(k): int(v) for k, v in inventory["split"].value_counts(dropna=False).items()},
            "per_class": tables.per_class(inventory),
            "preview": tables.table(inventory, {"path": "string", "label": "string", "split": "string",
                                                "bytes": "int"}, tables.PREVIEW_ROWS),
            "skipped": len(skipped),
            "skipped_by_reason": MetadataValue.json(skipped_counts),
            "skipped_files": tables.table(skipped, {"path": "string", "reason": "string"}, SKIPPED_LISTED),
            **sync_metadata,
        },
        data_version=DataVersion(listing_digest(inventory)),  # unchanged images: downstream not stale
        check_results=[AssetCheckResult(
            check_name="layout_parsed", passed=unparsed.empty,
            metadata={"unparsed": len(unparsed), "examples": MetadataValue.json(unparsed["path"].head(5).tolist())},
        )],
    )


# ---------------------------------------------------------------- feature_model
@asset(
    code_version=CODE_VERSIONS["feature_model"],
    group_name=GROUP,
    kinds={"tensorflow"},
    check_specs=[AssetCheckSpec("pretrained_weights", asset="feature_model",
                                description="features come from pretrained weights, not a random init")],
)
def feature_model(context: AssetExecutionContext, config: FeatureModelConfig, published: PublishedOutputs):
    """MobileNetV2 headless (224x224, average pooling, 1280-d) built once with Keras and
    converted to a LiteRT flatbuffer that Spark workers run without TensorFlow."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    with tensorflow_notices_dropped():  # TF's native start-up notices, CUDA probe included
        import keras
        import tensorflow as tf

    from .keras_model import (
        FEATURE_DIM,
        WeightsUnavailable,
        build_key,
        build_model,
        to_tflite,
    )
    from .litert_runtime import model_digest

    started = time.perf_counter()
    with tensorflow_notices_dropped():
        key = build_key(config.weights)
    stored, stored_version = published.feature_model()
    if stored is not None and stored.provenance.get("build_key") == key:
        # Same weights, same code, same TF/Keras: the Keras build and LiteRT conversion (20-40 s)
        # would give the same flatbuffer. Re-emit the stored one, byte for byte.
        context.log.info(f"feature model reused from version {stored_version} (build key {key[:12]})")
        return _feature_model_result(stored, reused_from=stored_version,
                                     seconds=time.perf_counter() - started)
    try:
        with tensorflow_notices_dropped():
            built = build_model(config.weights)
    except WeightsUnavailable as exc:
        raise expected_error(Failure(str(exc))) from None
    for note in built.notes:
        (context.log.warning if not built.pretrained else context.log.info)(note)
    with tensorflow_notices_dropped():
        model_bytes = to_tflite(built.model)
    provenance = {
        "architecture": "MobileNetV2(include_top=False, pooling='avg', input_shape=(224, 224, 3))",
        "feature_dim": FEATURE_DIM,
        "weights_setting": config.weights,
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
    }
    return _feature_model_result(FeatureModelArtifact(model_bytes, provenance), reused_from=None,
                                 seconds=time.perf_counter() - started)


def _feature_model_result(model: FeatureModelArtifact, reused_from: str | None, seconds: float) -> MaterializeResult:
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
            "reused_from_version": reused_from or "",
            "build_seconds": round(seconds, 2),
            "provenance": MetadataValue.json(p),
        },
        # Downstream assets are stale only when the model itself changed.
        data_version=DataVersion(p.get("model_sha256", "")),
        check_results=[AssetCheckResult(
            check_name="pretrained_weights", passed=model.pretrained, severity=AssetCheckSeverity.WARN,
            description=None if model.pretrained else
            "RANDOM weights: features and PCA are only good for testing the pipeline",
            metadata={"weights_source": p.get("weights_source")},
        )],
    )


# ---------------------------------------------------------------- image_features
FEATURE_CHECKS = ["counts_reconcile", "feature_dims", "features_finite", "features_not_constant"]


@multi_asset(
    outs={
        "image_features": AssetOut(
            group_name=GROUP, kinds={"spark", "parquet"}, is_required=False,
            code_version=CODE_VERSIONS["image_features"],
            description="One row per readable image: path, label, split, features float[1280]."),
        "image_rejects": AssetOut(
            group_name=GROUP, kinds={"pandas", "parquet"}, is_required=False,
            code_version=CODE_VERSIONS["image_rejects"],
            description="Images that could not be featurized, with the reason (never a zero vector)."),
    },
    check_specs=[AssetCheckSpec(name, asset="image_features", blocking=True) for name in FEATURE_CHECKS],
    # `--select image_features+` must work without naming image_rejects too.
    can_subset=True,
)
def image_features(
    context: AssetExecutionContext,
    config: FeaturizeConfig,
    raw_images: pd.DataFrame,
    feature_model: FeatureModelArtifact,
    images: ImageStore,
    staging: StagingArea,
    published: PublishedOutputs,
    pyspark: FruitsSpark,
    pyspark_step_launcher: ResourceParam[Any],
):
    """MobileNetV2 features for every inventory image: Spark tasks read, decode, run LiteRT and
    write parquet parts; the counts and checks come from one summary row per image."""
    dim = int(feature_model.provenance.get("feature_dim", 1280))
    # What makes a feature row: the model, and the decoding around it (code version, Pillow).
    model_sha = featurizer_key(feature_model.provenance.get("model_sha256", ""), CODE_VERSIONS["image_features"])
    options = FeaturizeOptions(batch_size=config.batch_size, arrow_batch_rows=config.arrow_batch_rows,
                               interpreter_threads=config.interpreter_threads, read_threads=config.read_threads)
    previous = load_previous(published.current_uri("image_features"), published.read_table("image_rejects"),
                             published.endpoint_url, published.region)
    todo = plan(raw_images, previous, model_sha, config.full_refresh)
    context.log.info("%s: %d images to featurize, %d feature rows and %d rejections carried over, %d removed",
                     todo.reason, len(todo.compute), len(todo.carry_paths), len(todo.carried_rejects), todo.removed)
    staged = staging.new_dir("image_features", context.run_id)
    started = time.perf_counter()
    try:
        carried = carry_parts(previous.uri, todo.carry_paths, staged, staging.endpoint_url,
                              staging.region) if previous else 0
        carry_seconds = time.perf_counter() - started
        summary = (featurize(pyspark.spark_session, todo.compute, spark_path_root(images.spark_root()), staged,
                             feature_model.model_bytes, options, images.location(), staging.location())
                   if len(todo.compute) else pd.DataFrame(columns=["path", "label", "split", "bytes", "error",
                                                                  "finite", "dims"]))
    except BaseException:
        staging.discard(staged)
        raise
    seconds = time.perf_counter() - started - carry_seconds
    ok = summary["error"].isna()
    n_computed, n_ok = len(summary), int(ok.sum())
    n_rejects = n_computed - n_ok + len(todo.carried_rejects)
    n_features = n_ok + carried
    fingerprints = raw_images.set_index("path")["fingerprint"]
    manifest = pd.concat([
        pd.DataFrame({"path": sorted(todo.carry_paths)}),
        summary.loc[ok, ["path"]]], ignore_index=True)
    manifest["fingerprint"] = manifest["path"].map(fingerprints)
    key = content_key(model_sha, manifest)
    write_sidecars(staged, manifest, {"model_sha256": model_sha, "content_key": key, "rows": n_features,
                                      "model": feature_model.provenance.get("model_sha256", "")},
                   staging.endpoint_url, staging.region)
    per_split = {str(k): int(v) for k, v in raw_images.loc[raw_images["path"].isin(set(manifest["path"])),
                                                             "split"].value_counts().items()}
    non_finite = int((~summary.loc[ok, "finite"].astype(bool)).sum())
    # What was written, from the parquet footers: rows and values must match the summary.
    written = read_back(staged, 1000, staging.location())
    written_rows, written_values, sample = written.rows, written.values, written.sample
    bad_dims = int((summary.loc[ok, "dims"] != dim).sum())
    spread = float(sample.std(axis=0).mean()) if len(sample) > 1 else 0.0
    new_rejects = summary.loc[~ok, ["path", "label", "split", "bytes", "error"]].copy()
    new_rejects["fingerprint"] = new_rejects["path"].map(fingerprints)
    rejects = (pd.concat([todo.carried_rejects, new_rejects], ignore_index=True)[list(REJECT_COLUMNS)]
               .sort_values("path", ignore_index=True)
               .astype({"path": "string", "label": "string", "split": "string", "bytes": "int64", "error": "string",
                        "fingerprint": "string"}))
    checks_seconds = time.perf_counter() - started - seconds - carry_seconds
    if n_computed:
        context.log.info("featurized %d images (%d rejected) in %.1fs: %.1f images/s",
                         n_computed, n_computed - n_ok, seconds, n_computed / max(seconds, 1e-9))
    n_rows = n_features + n_rejects
    checks = [
        AssetCheckResult(
            asset_key="image_features", check_name="counts_reconcile",
            passed=n_rows == len(raw_images) and written_rows == n_features,
            description="features + rejects = images in the inventory; parquet rows = features",
            metadata={"features": n_features, "rejects": n_rejects, "inventory": len(raw_images),
                      "parquet_rows": written_rows}),
        AssetCheckResult(asset_key="image_features", check_name="feature_dims",
                         passed=bad_dims == 0 and written_values == written_rows * dim,
                         metadata={"expected": dim, "rows_with_other_dims": bad_dims,
                                   "parquet_values": written_values}),
        AssetCheckResult(asset_key="image_features", check_name="features_finite", passed=non_finite == 0,
                         metadata={"rows_with_nan_or_inf": non_finite}),
        AssetCheckResult(asset_key="image_features", check_name="features_not_constant",
                         passed=spread > MIN_FEATURE_SPREAD,
                         description=None if spread > MIN_FEATURE_SPREAD else
                         f"{n_features} feature rows of {n_rows} images: nothing (or only constant vectors) to publish",
                         metadata={"mean_std_across_images": spread, "sampled": len(sample),
                                   "threshold": MIN_FEATURE_SPREAD}),
    ]
    yield from audit_or_fail("image_features", checks, on_fail=lambda: staging.discard(staged))
    selected = {key.path[-1] for key in context.selected_asset_keys}
    if "image_features" in selected:
        yield MaterializeResult(
            asset_key="image_features",
            value=StagedParquet(staged, tuple((f.name, str(f.type)) for f in FEATURES_SCHEMA)),
            metadata={
                "dagster/row_count": written_rows,
                "feature_dim": dim,
                "per_split": per_split,
                "rejected": n_rejects,
                "images_computed": n_computed,
                "images_reused": carried + len(todo.carried_rejects),
                "images_removed": todo.removed,
                "refresh": todo.reason,
                "content_key": key,
                "featurize_seconds": round(seconds, 2),
                "carry_seconds": round(carry_seconds, 2),
                "checks_seconds": round(checks_seconds, 2),
                "images_per_second": round(n_computed / max(seconds, 1e-9), 1),
                "feature_std_across_images": round(spread, 6),
                "preview": tables.preview_parts(staged, staging.location(), "features"),
                "model_sha256": feature_model.provenance.get("model_sha256", "")[:12],
                "weights_source": feature_model.provenance.get("weights_source", ""),
            },
            data_version=DataVersion(key),  # same rows, same model: downstream is not stale
        )
    else:
        staging.discard(staged)
    if "image_rejects" in selected:
        yield MaterializeResult(
            asset_key="image_rejects",
            value=rejects,
            metadata={
                "dagster/row_count": n_rejects,
                "rejected_files": tables.table(rejects, {"path": "string", "error": "string"}, SKIPPED_LISTED),
            },
        )


# ---------------------------------------------------------------- PCA
@asset(
    code_version=CODE_VERSIONS["pca_model"],
    group_name=GROUP,
    kinds={"spark", "numpy"},
    check_specs=[AssetCheckSpec("explained_variance_target", asset="pca_model",
                                description="the chosen k reaches the explained-variance target")],
)
def pca_model(context: AssetExecutionContext, config: PcaConfig, image_features: ParquetParts,
              published: PublishedOutputs, pyspark: FruitsSpark, pyspark_step_launcher: ResourceParam[Any]):
    """PCA fitted on the Training split (all rows if there is none), k from the variance target:
    Spark tasks reduce their row groups to moments, the driver merges them and solves one
    1280 x 1280 eigenproblem. Stored as pca.npz + pca.json (open format, see README)."""
    started = time.perf_counter()
    key = fit_key(read_info(image_features.uri, FEATURIZED, image_features.endpoint_url, image_features.region),
                  config.model_dump())
    previous = published.pca_model() if key else None
    reused = previous is not None and previous.extra.get("fit_key") == key
    if reused:
        # The same feature rows and settings give the same PCA: re-emit the stored model.
        model, moments_s, eig_s = previous, 0.0, 0.0
        context.log.info("features unchanged since the last fit: PCA model reused")
    else:
        result = fit_pca(pyspark.spark_session, image_features.uri, image_features.location(),
                         config.target_variance, config.max_k, config.standardize)
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
        check_results=[AssetCheckResult(
            check_name="explained_variance_target", passed=sel.reached,
            metadata={"k": sel.k, "explained_variance": sel.explained_variance, "target": sel.target},
            description=sel.reason)],
    )


PCA_CHECKS = ["pca_rows_match", "pca_dims", "pca_finite"]


@asset(
    code_version=CODE_VERSIONS["image_pca"],
    group_name=GROUP,
    kinds={"spark", "parquet"},
    check_specs=[AssetCheckSpec(name, asset="image_pca", blocking=True) for name in PCA_CHECKS],
)
def image_pca(context: AssetExecutionContext, pca_model: PcaModel, image_features: ParquetParts,
              staging: StagingArea, published: PublishedOutputs, pyspark: FruitsSpark,
              pyspark_step_launcher: ResourceParam[Any]):
    """Every image projected on the k principal components: path, label, split, pca float[k].
    Tasks read the feature row groups and write their own parts, as featurization does."""
    k = pca_model.k
    staged = staging.new_dir("image_pca", context.run_id)
    started = time.perf_counter()
    key = pca_model.extra.get("fit_key")
    previous_uri = published.current_uri("image_pca")
    previous = read_info(previous_uri, PROJECTED, published.endpoint_url, published.region) if previous_uri else None
    features_key = (read_info(image_features.uri, FEATURIZED, image_features.endpoint_url, image_features.region)
                    or {}).get("content_key")
    # Same model AND the same feature rows (image_features may have been materialized alone since).
    reused = (key is not None and features_key is not None and previous is not None
              and previous.get("fit_key") == key and previous.get("features_key") == features_key)
    try:
        if reused:
            # Same model, same feature rows: the projections would be the same bytes.
            carry_parts(previous_uri, None, staged, staging.endpoint_url, staging.region)
            summary = pd.DataFrame({"rows": [0], "non_finite": [0], "bad_dims": [0], "x": [None], "y": [None],
                                    "label": [None]})
        else:
            summary = project(pyspark.spark_session, image_features.uri, image_features.location(), pca_model,
                              staged, staging.location())
        write_info(staged, PROJECTED, {"fit_key": key, "features_key": features_key}, staging.endpoint_url,
                   staging.region)
    except BaseException:
        staging.discard(staged)
        raise
    seconds = time.perf_counter() - started
    counts = summary[summary["x"].isna()]
    points = summary[summary["x"].notna()]
    n_rows, non_finite, bad_dims = (int(counts[c].sum()) for c in ("rows", "non_finite", "bad_dims"))
    n_features = sum(u.rows for u in row_groups(image_features.uri, image_features.location()))
    written = read_back(staged, 0, staging.location(), column="pca")
    if reused:
        n_rows = written.rows  # carried parts: their rows were counted and audited when projected
        points = tables.sample_points(staged, staging.location(), SCATTER_POINTS)
    scatter = scatter_png(points["x"].tolist(), points["y"].tolist(), points["label"].fillna("?").tolist(),
                          "First two principal components", pca_model.explained_variance_ratio[:2])
    checks = [
        AssetCheckResult(asset_key="image_pca", check_name="pca_rows_match",
                         passed=n_rows == n_features == written.rows,
                         metadata={"pca_rows": n_rows, "feature_rows": n_features, "parquet_rows": written.rows}),
        AssetCheckResult(asset_key="image_pca", check_name="pca_dims",
                         passed=bad_dims == 0 and written.values == written.rows * k,
                         metadata={"k": k, "rows_with_other_dims": bad_dims, "parquet_values": written.values}),
        AssetCheckResult(asset_key="image_pca", check_name="pca_finite", passed=non_finite == 0,
                         metadata={"rows_with_nan_or_inf": non_finite}),
    ]
    yield from audit_or_fail("image_pca", checks, on_fail=lambda: staging.discard(staged))
    yield MaterializeResult(
        asset_key="image_pca",
        value=WithFigures(StagedParquet(staged, tuple((f.name, str(f.type)) for f in PCA_SCHEMA)),
                          {"pc1_vs_pc2.png": scatter}),
        metadata={
            "dagster/row_count": n_rows,
            "k": k,
            "reused": reused,
            "project_seconds": round(seconds, 2),
            "preview": tables.preview_parts(staged, staging.location(), "pca"),
            "pc1_vs_pc2": MetadataValue.md(markdown_image(scatter, "PC1 vs PC2")),
        },
    )


# ---------------------------------------------------------------- probe
PROBE_SCHEMA = pa.schema([("path", pa.string()), ("label", pa.string()), ("split", pa.string()),
                          ("predicted", pa.string()), ("correct", pa.bool_())])


@asset(
    code_version=CODE_VERSIONS["feature_probe"],
    group_name=GROUP,
    kinds={"spark", "parquet"},
    check_specs=[AssetCheckSpec("probe_above_chance", asset="feature_probe",
                                description=f"probe accuracy >= {CHANCE_FACTOR} x chance (the larger of the "
                                            "majority-class rate and 1/classes)")],
)
def feature_probe(context: AssetExecutionContext, config: ProbeConfig, image_pca: ParquetParts,
                  image_features: ParquetParts, staging: StagingArea, published: PublishedOutputs,
                  pyspark: FruitsSpark, pyspark_step_launcher: ResourceParam[Any]):
    """What the features are worth for fruit recognition: a multinomial logistic regression
    (Spark ML) trained on the Training split and evaluated on the Test split (a seeded 80/20 split
    when there is none), on the PCA projection or, by config, the raw features. One row per
    evaluated image: path, label, split, predicted, correct; the numbers are in metadata and in
    ``_probe.json`` beside the rows."""
    source = image_pca if config.features == "image_pca" else image_features
    info_name = PROJECTED if config.features == "image_pca" else FEATURIZED
    source_info = read_info(source.uri, info_name, source.endpoint_url, source.region)
    key = probe_key(config.features, source_info, config.model_dump(), CODE_VERSIONS["feature_probe"])
    previous_uri = published.current_uri("feature_probe")
    previous = read_info(previous_uri, PROBED, published.endpoint_url, published.region) if previous_uri else None
    reused = key is not None and previous is not None and previous.get("probe_key") == key
    staged = staging.new_dir("feature_probe", context.run_id)
    started = time.perf_counter()
    try:
        if reused:
            # Same vectors, same settings: the same model and predictions. Carried byte for byte.
            context.log.info("probe inputs and settings unchanged: predictions and numbers reused")
            carry_parts(previous_uri, None, staged, staging.endpoint_url, staging.region)
            report = previous
        else:
            slow = native_blas_missing(pyspark.spark_session)
            if slow:
                context.log.warning(slow)
            fit = fit_probe(pyspark.spark_session, source.uri, source.location(), VECTOR_COLUMN[config.features],
                            config.seed, config.max_train_rows_per_class, config.reg_param, config.max_iter,
                            config.tol)
            rows = fit.predictions
            report = evaluate(rows["label"], rows["predicted"], fit.train_counts)
            report.update(probe_key=key, features=config.features, split_rule=fit.plan.split_rule,
                          fitted=fit.fitted, iterations=fit.iterations, max_iter=config.max_iter,
                          dim=fit.dim, train_seconds=round(fit.train_seconds, 2),
                          predict_seconds=round(fit.predict_seconds, 2), rows_per_role=fit.plan.counts())
            if not fit.fitted:
                report["note"] = (f"{len(fit.train_counts)} class(es) in the training rows: nothing to tell apart, "
                                  "no model fitted; every evaluated image is 'predicted' as that class")
            table = pa.table({"path": rows["path"].astype(str), "label": rows["label"].astype(str),
                              "split": rows["split"].astype(str), "predicted": rows["predicted"].astype("string"),
                              "correct": (rows["label"] == rows["predicted"]).to_numpy(bool)}, schema=PROBE_SCHEMA)
            write_table(staged, PART_NAME.format(0), table, staging.endpoint_url, staging.region)
        # In both cases: carry_parts copies data parts only, and the next run looks for this file.
        write_info(staged, PROBED, report, staging.endpoint_url, staging.region)
    except BaseException:
        staging.discard(staged)
        raise
    seconds = time.perf_counter() - started
    accuracy, majority = report["accuracy"], report["majority_rate"]
    passed, threshold, why = above_chance(report)
    (context.log.info if passed else context.log.warning)(
        f"probe on {report['features']}: {why}; {report['eval_rows']} evaluated images, {report['classes']} classes")
    confusion = confusion_png(report["confusion"]["labels"], report["confusion"]["counts"], accuracy,
                              report["classes"])
    worst = pd.DataFrame(report["worst_classes"], columns=["label", "rows", "accuracy", "most_confused_with",
                                                           "confused_rows"])
    rows_per_role = report["rows_per_role"]
    return MaterializeResult(
        value=WithFigures(StagedParquet(staged, tuple((f.name, str(f.type)) for f in PROBE_SCHEMA)),
                          {"confusion.png": confusion}),
        metadata={
            "dagster/row_count": report["eval_rows"],
            "accuracy": _rounded(accuracy),
            "macro_f1": _rounded(report["macro_f1"]),
            "chance_uniform": _rounded(report["chance_uniform"]),
            "majority_class_rate": _rounded(majority),
            "majority_class": report["majority_class"] or "",
            "classes": report["classes"],
            "train_rows": rows_per_role["train"],
            "eval_rows": rows_per_role["eval"],
            "unused_rows": rows_per_role["unused"],
            "unlabelled_rows": rows_per_role.get("unlabelled", 0),
            "split_rule": report["split_rule"],
            "features": f"{report['features']} ({report['dim']}-d)" if report["dim"] else report["features"],
            "fitted": report["fitted"],
            "iterations": f"{report['iterations']} of at most {report['max_iter']}",
            "train_seconds": report["train_seconds"],
            "predict_seconds": report["predict_seconds"],
            "probe_seconds": round(seconds, 2),
            "reused": reused,
            "eval_classes_unseen_in_training": len(report["eval_classes_unseen_in_training"]),
            "worst_classes": tables.table(worst, {"label": "string", "rows": "int", "accuracy": "float",
                                                  "most_confused_with": "string", "confused_rows": "int"}),
            "confusion": MetadataValue.md(markdown_image(confusion, "confusion among the most confused classes")),
            **({"note": report["note"]} if report.get("note") else {}),
        },
        check_results=[AssetCheckResult(
            check_name="probe_above_chance", passed=passed, severity=AssetCheckSeverity.WARN, description=why,
            metadata={"accuracy": _rounded(accuracy), "majority_class_rate": _rounded(majority),
                      "threshold": _rounded(threshold), "classes": report["classes"]})],
    )


def _rounded(value, digits: int = 4):
    # Metadata of None would be an error: an undefined number is shown as "n/a".
    return "n/a" if value is None else round(float(value), digits)
