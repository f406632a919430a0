"""image_features (+ image_rejects): the plan joins the inventory with the committed rows in Spark;
Spark tasks read, decode, run LiteRT and write parquet parts; only images without a valid row are
computed (incremental), and the blocking checks pass before anything is published. The driver
holds counts and file lists, never a row per image."""

import time
from dataclasses import dataclass
from typing import Any

import pandas as pd
from dagster import (
    AssetCheckResult,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetOut,
    DataVersion,
    MaterializeResult,
    MetadataValue,
    ResourceParam,
    multi_asset,
)

from .. import settings
from ..analysis.keys import content_key, featurizer_key
from ..images.digest import RowDigest
from ..names import GROUP, IMAGE_FEATURES, IMAGE_REJECTS
from ..spark import plan as spark_plan
from ..spark.featurize import FEATURES_SCHEMA, REJECTS_SCHEMA, FeaturizeOptions, FeaturizeStats, featurize
from ..storage.artifacts import FeatureModelArtifact, NewParts, ParquetParts
from ..storage.parts import read_back
from . import metadata
from .checks import audit_or_fail
from .resources import FruitsSpark, ImageStore, PublishedOutputs
from .run_config import FeaturizeConfig

CODE_VERSION = "incremental-v1"  # part of the featurizer key: a change recomputes every row
CHECKS = ["counts_reconcile", "feature_dims", "features_finite", "features_not_constant"]
MIN_FEATURE_SPREAD = 1e-6  # degenerate (default Keras random init) features have std ~5e-12
REJECTS_LISTED = 200
RATE_MIN_IMAGES = 100


@dataclass(frozen=True)
class Counts:
    """What this run's featurization gives, from the tasks' stats and the plan's counts."""

    computed: int
    ok: int
    carried: int
    rejects: int
    bad_dims: int
    non_finite: int

    @property
    def features(self) -> int:
        return self.ok + self.carried


def _counts(stats: FeaturizeStats, carried: int, carried_rejects: int) -> Counts:
    return Counts(
        computed=stats.computed,
        ok=stats.ok,
        carried=carried,
        rejects=stats.rejected + carried_rejects,
        bad_dims=stats.bad_dims,
        non_finite=stats.non_finite,
    )


def _checks(
    counts: Counts, inventory_rows: int, written_rows: int, written_values: int, dim: int, spread: float, sampled: int
) -> list[AssetCheckResult]:
    n_rows = counts.features + counts.rejects
    enough_spread = spread > MIN_FEATURE_SPREAD
    return [
        AssetCheckResult(
            asset_key=IMAGE_FEATURES,
            check_name="counts_reconcile",
            passed=n_rows == inventory_rows and written_rows == counts.features,
            description="features + rejects = images in the inventory; parquet rows = features",
            metadata={
                "features": counts.features,
                "rejects": counts.rejects,
                "inventory": inventory_rows,
                "parquet_rows": written_rows,
            },
        ),
        AssetCheckResult(
            asset_key=IMAGE_FEATURES,
            check_name="feature_dims",
            passed=counts.bad_dims == 0 and written_values == written_rows * dim,
            metadata={"expected": dim, "rows_with_other_dims": counts.bad_dims, "parquet_values": written_values},
        ),
        AssetCheckResult(
            asset_key=IMAGE_FEATURES,
            check_name="features_finite",
            passed=counts.non_finite == 0,
            metadata={"rows_with_nan_or_inf": counts.non_finite},
        ),
        AssetCheckResult(
            asset_key=IMAGE_FEATURES,
            check_name="features_not_constant",
            passed=enough_spread,
            description=None
            if enough_spread
            else f"{counts.features} feature rows of {n_rows} images: nothing (or only constant vectors) to publish",
            metadata={"mean_std_across_images": spread, "sampled": sampled, "threshold": MIN_FEATURE_SPREAD},
        ),
    ]


@multi_asset(
    outs={
        IMAGE_FEATURES: AssetOut(
            group_name=GROUP,
            kinds={"spark", "parquet"},
            is_required=False,
            code_version=CODE_VERSION,
            description="One row per readable image: path, label, split, features float[1280].",
        ),
        IMAGE_REJECTS: AssetOut(
            group_name=GROUP,
            kinds={"pandas", "parquet"},
            is_required=False,
            code_version=CODE_VERSION,
            description="Images that could not be featurized, with the reason (never a zero vector).",
        ),
    },
    check_specs=[AssetCheckSpec(name, asset=IMAGE_FEATURES, blocking=True) for name in CHECKS],
    # `--select image_features+` must work without naming image_rejects too.
    can_subset=True,
)
def image_features(
    context: AssetExecutionContext,
    config: FeaturizeConfig,
    raw_images: ParquetParts,
    feature_model: FeatureModelArtifact,
    images: ImageStore,
    published: PublishedOutputs,
    pyspark: FruitsSpark,
    pyspark_step_launcher: ResourceParam[Any],
):
    """MobileNetV2 features for every inventory image: the plan joins the inventory with the
    committed rows in Spark; tasks read, decode, run LiteRT and write features and rejections;
    the driver gets counts and file lists only."""
    dim = int(feature_model.provenance.get("feature_dim", 1280))
    # What makes a feature row: the model, and the decoding around it (code version, Pillow).
    provenance = feature_model.provenance
    precision = provenance.get("precision") or "fp32"
    featurizer = featurizer_key(
        provenance.get("model_sha256", ""), CODE_VERSION, precision, (provenance.get("calibration") or {}).get("digest")
    )
    lake = published.lake()
    spark = pyspark.spark_session
    current = published.snapshot(IMAGE_FEATURES)
    current_rejects = published.snapshot(IMAGE_REJECTS)
    if current is None and lake.legacy(IMAGE_FEATURES):
        context.log.info("outputs of the previous storage layout are not read: every image is featurized once")
    builds_on = current is not None and "featurizer_key" in current.info
    stored_featurizer = current.info.get("featurizer_key") if current is not None else None
    reuse = (
        None
        if builds_on and not config.full_refresh and stored_featurizer == featurizer
        else "full refresh requested"
        if builds_on and config.full_refresh
        else "the model changed: every image is featurized again"
        if builds_on
        else None
    )
    prefix = published.new_prefix(IMAGE_FEATURES, context.run_id)
    rejects_prefix = published.new_prefix(IMAGE_REJECTS, context.run_id)
    options = FeaturizeOptions(
        batch_size=config.batch_size,
        arrow_batch_rows=config.arrow_batch_rows,
        interpreter_threads=config.interpreter_threads,
        read_threads=config.read_threads,
        max_image_bytes=settings.max_image_bytes(),
        max_batch_bytes=settings.max_batch_bytes(),
    )
    feature_files = list(current.file_uris()) if builds_on and current else None
    started = time.perf_counter()
    todo = None
    try:
        todo = spark_plan.plan(
            spark,
            list(raw_images.files),
            feature_files,
            list(current_rejects.file_uris()) if current_rejects and builds_on else [],
            published.location(),
            reuse,
            RowDigest.parse(raw_images.info["listing_digest"]) if "listing_digest" in raw_images.info else None,
        )
        # Unchanged files stay as they are; a file holding a changed or removed image is removed
        # and its surviving rows rewritten; a new version's rows replace everything.
        if current is not None and not builds_on:  # a table committed elsewhere: replaced entirely
            todo.removed_files = list(range(len(current.files)))
        rewritten = spark_plan.rewrite_survivors(todo, feature_files or [], prefix, published.location())
        removes = tuple(current.files[i] for i in todo.removed_files) if current else ()
        untouched = [current.files[i] for i in todo.untouched] if current else []
        carried = todo.carried_rows
        context.log.info(
            "%s: %d images to featurize; %d feature rows carried over (%d files untouched, %d rows rewritten), "
            "%d rejections carried over, %d removed",
            todo.reason,
            todo.compute_rows,
            carried,
            len(untouched),
            rewritten,
            todo.carried_rejects_rows,
            todo.removed,
        )
        carried_rejects = (
            spark_plan.write_rows(todo.carried_rejects, f"{rejects_prefix}-c", REJECTS_SCHEMA, published.location())
            if todo.carried_rejects is not None and todo.carried_rejects_rows
            else 0
        )
        carry_seconds = time.perf_counter() - started
        stats = (
            featurize(
                spark,
                todo.compute,
                images.path_root(),
                prefix,
                feature_model.model_bytes,
                options,
                images.location(),
                published.location(),
                rejects_prefix=rejects_prefix,
                rows=todo.compute_rows,
            )
            if todo.compute_rows
            else FeaturizeStats()
        )
    except BaseException:
        published.discard(prefix)
        published.discard(rejects_prefix)
        raise
    finally:
        if todo is not None:
            todo.release()
    seconds = time.perf_counter() - started - carry_seconds
    counts = _counts(stats, carried, carried_rejects)
    key = content_key(featurizer, todo.carried_digest.merge(stats.digest).hexdigest())
    info = {
        "featurizer_key": featurizer,
        "content_key": key,
        "rows": counts.features,
        "model": feature_model.provenance.get("model_sha256", ""),
        "precision": precision,
    }
    per_split = dict(todo.carried_per_split)
    for split, n in stats.per_split.items():
        per_split[str(split)] = per_split.get(str(split), 0) + n
    # What the table holds once committed, from the parquet footers: rows and values must match.
    table_uri = lake.table_uri(IMAGE_FEATURES)
    files = [f"{table_uri}/{e.path}" for e in untouched] + [f"{table_uri}/{n}" for n in lake.written(prefix)]
    written = read_back(files, 1000, published.location())
    spread = float(written.sample.std(axis=0).mean()) if len(written.sample) > 1 else 0.0
    checks_seconds = time.perf_counter() - started - seconds - carry_seconds
    if counts.computed:
        # A rate over a handful of images is Spark's start-up, not featurization: not shown.
        rate = f": {counts.computed / max(seconds, 1e-9):.1f} images/s" if counts.computed >= RATE_MIN_IMAGES else ""
        context.log.info(
            "featurized %d images (%d rejected) in %.1fs%s", counts.computed, counts.computed - counts.ok, seconds, rate
        )
    checks = _checks(counts, todo.inventory_rows, written.rows, written.values, dim, spread, len(written.sample))

    def discard() -> None:
        published.discard(prefix)
        published.discard(rejects_prefix)

    yield from audit_or_fail(IMAGE_FEATURES, checks, on_fail=discard)
    selected = {asset_key.path[-1] for asset_key in context.selected_asset_keys}
    if IMAGE_FEATURES in selected:
        yield MaterializeResult(
            asset_key=IMAGE_FEATURES,
            value=NewParts(
                prefix,
                tuple((f.name, str(f.type)) for f in FEATURES_SCHEMA),
                FEATURES_SCHEMA,
                current.version if current else None,
                removes,
                info,
            ),
            metadata={
                "dagster/row_count": written.rows,
                "feature_dim": dim,
                "per_split": per_split,
                "rejected": counts.rejects,
                "images_computed": counts.computed,
                "images_reused": carried + carried_rejects,
                "files_untouched": len(untouched),
                "files_removed": len(removes),
                "rows_rewritten": rewritten,
                "images_removed": todo.removed,
                "refresh": todo.reason,
                "content_key": key,
                "featurize_seconds": round(seconds, 2),
                "carry_seconds": round(carry_seconds, 2),
                "checks_seconds": round(checks_seconds, 2),
                "images_per_second": round(counts.computed / max(seconds, 1e-9), 1),
                "worker_peak_rss_mb": stats.worker_peak_rss_mb,
                "rejected_too_large": stats.too_large,
                "feature_std_across_images": round(spread, 6),
                "preview": metadata.preview_parts(files, published.location(), "features", root=images.path_root()),
                "images_root": MetadataValue.path(images.uri),
                "model_sha256": feature_model.provenance.get("model_sha256", "")[:12],
                "weights_source": feature_model.provenance.get("weights_source", ""),
                "precision": precision,
            },
            data_version=DataVersion(key),  # same rows, same model: downstream is not stale
        )
    else:
        published.discard(prefix)
    if IMAGE_REJECTS in selected:
        yield MaterializeResult(
            asset_key=IMAGE_REJECTS,
            value=NewParts(
                rejects_prefix,
                tuple((f.name, str(f.type)) for f in REJECTS_SCHEMA),
                REJECTS_SCHEMA,
                current_rejects.version if current_rejects else None,
                current_rejects.files if current_rejects else (),
                {"rows": counts.rejects},
            ),
            metadata={
                "dagster/row_count": counts.rejects,
                "rejected_files": metadata.table(
                    pd.DataFrame(stats.reject_examples, columns=["path", "error"]),
                    {"path": "string", "error": "string"},
                    REJECTS_LISTED,
                    root=images.path_root(),
                ),
                "images_root": MetadataValue.path(images.uri),
            },
        )
    else:
        published.discard(rejects_prefix)
