"""image_features (+ image_rejects): Spark tasks read, decode, run LiteRT and write parquet parts;
only images without a valid row are computed (incremental), and the blocking checks pass before
anything is published."""

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

from ..analysis import incremental
from ..analysis.keys import content_key, featurizer_key
from ..names import GROUP, IMAGE_FEATURES, IMAGE_REJECTS
from ..spark.featurize import FEATURES_SCHEMA, SUMMARY_COLUMNS, FeaturizeOptions, featurize
from ..storage.artifacts import FeatureModelArtifact, NewParts
from ..storage.parts import read_back, rewrite_survivors
from ..storage.previous import load_previous
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
    """What this run's featurization gives, from the per-image summary and the written parts."""

    computed: int
    ok: int
    carried: int
    rejects: int
    bad_dims: int
    non_finite: int

    @property
    def features(self) -> int:
        return self.ok + self.carried


def _counts(summary: pd.DataFrame, carried: int, carried_rejects: int, dim: int) -> Counts:
    ok = summary["error"].isna()
    return Counts(
        computed=len(summary),
        ok=int(ok.sum()),
        carried=carried,
        rejects=len(summary) - int(ok.sum()) + carried_rejects,
        bad_dims=int((summary.loc[ok, "dims"] != dim).sum()),
        non_finite=int((~summary.loc[ok, "finite"].astype(bool)).sum()),
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
    raw_images: pd.DataFrame,
    feature_model: FeatureModelArtifact,
    images: ImageStore,
    published: PublishedOutputs,
    pyspark: FruitsSpark,
    pyspark_step_launcher: ResourceParam[Any],
):
    """MobileNetV2 features for every inventory image: Spark tasks read, decode, run LiteRT and
    write parquet parts; the counts and checks come from one summary row per image."""
    dim = int(feature_model.provenance.get("feature_dim", 1280))
    # What makes a feature row: the model, and the decoding around it (code version, Pillow).
    provenance = feature_model.provenance
    precision = provenance.get("precision") or "fp32"
    featurizer = featurizer_key(
        provenance.get("model_sha256", ""), CODE_VERSION, precision, (provenance.get("calibration") or {}).get("digest")
    )
    lake = published.lake()
    current = published.snapshot(IMAGE_FEATURES)
    loaded = load_previous(lake, current, published.read_table(IMAGE_REJECTS))
    previous = loaded.previous if loaded else None
    if current is None and lake.legacy(IMAGE_FEATURES):
        context.log.info("outputs of the previous storage layout are not read: every image is featurized once")
    todo = incremental.plan(raw_images, previous, featurizer, config.full_refresh)
    prefix = published.new_prefix(IMAGE_FEATURES, context.run_id)
    options = FeaturizeOptions(
        batch_size=config.batch_size,
        arrow_batch_rows=config.arrow_batch_rows,
        interpreter_threads=config.interpreter_threads,
        read_threads=config.read_threads,
    )
    started = time.perf_counter()
    try:
        # Unchanged files stay as they are; a file holding a changed or removed image is removed
        # and its surviving rows rewritten; a new version's rows replace everything.
        keep = todo.carry_paths if previous is not None and todo.reason == "incremental" else frozenset()
        if loaded is not None:
            removed_idx, rewritten = rewrite_survivors(loaded.rows_by_file, keep, prefix, published.location())
        else:  # nothing to build on (no table, or one committed elsewhere): every file is replaced
            removed_idx, rewritten = list(range(len(current.files) if current else 0)), 0
        removes = tuple(current.files[i] for i in removed_idx) if current else ()
        untouched = [e for i, e in enumerate(current.files) if i not in set(removed_idx)] if current else []
        carried = rewritten + sum(e.rows or 0 for e in untouched)
        context.log.info(
            "%s: %d images to featurize; %d feature rows carried over (%d files untouched, %d rows rewritten), "
            "%d rejections carried over, %d removed",
            todo.reason,
            len(todo.compute),
            carried,
            len(untouched),
            rewritten,
            len(todo.carried_rejects),
            todo.removed,
        )
        carry_seconds = time.perf_counter() - started
        summary = (
            featurize(
                pyspark.spark_session,
                todo.compute,
                images.path_root(),
                prefix,
                feature_model.model_bytes,
                options,
                images.location(),
                published.location(),
            )
            if len(todo.compute)
            else pd.DataFrame(columns=list(SUMMARY_COLUMNS))
        )
    except BaseException:
        published.discard(prefix)
        raise
    seconds = time.perf_counter() - started - carry_seconds
    counts = _counts(summary, carried, len(todo.carried_rejects), dim)
    ok = summary["error"].isna()
    fingerprints = raw_images.set_index("path")["fingerprint"]
    rows = incremental.manifest(todo.carry_paths, summary.loc[ok, "path"], fingerprints)
    key = content_key(featurizer, rows)
    info = {
        "featurizer_key": featurizer,
        "content_key": key,
        "rows": counts.features,
        "model": feature_model.provenance.get("model_sha256", ""),
        "precision": precision,
    }
    per_split = {
        str(k): int(v)
        for k, v in raw_images.loc[raw_images["path"].isin(set(rows["path"])), "split"].value_counts().items()
    }
    # What the table holds once committed, from the parquet footers: rows and values must match.
    table_uri = lake.table_uri(IMAGE_FEATURES)
    files = [f"{table_uri}/{e.path}" for e in untouched] + [f"{table_uri}/{n}" for n in lake.written(prefix)]
    written = read_back(files, 1000, published.location())
    spread = float(written.sample.std(axis=0).mean()) if len(written.sample) > 1 else 0.0
    rejects = incremental.rejects(todo.carried_rejects, summary.loc[~ok], fingerprints)
    checks_seconds = time.perf_counter() - started - seconds - carry_seconds
    if counts.computed:
        # A rate over a handful of images is Spark's start-up, not featurization: not shown.
        rate = f": {counts.computed / max(seconds, 1e-9):.1f} images/s" if counts.computed >= RATE_MIN_IMAGES else ""
        context.log.info(
            "featurized %d images (%d rejected) in %.1fs%s", counts.computed, counts.computed - counts.ok, seconds, rate
        )
    checks = _checks(counts, len(raw_images), written.rows, written.values, dim, spread, len(written.sample))
    yield from audit_or_fail(IMAGE_FEATURES, checks, on_fail=lambda: published.discard(prefix))
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
                "images_reused": carried + len(todo.carried_rejects),
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
            value=rejects,
            metadata={
                "dagster/row_count": counts.rejects,
                "rejected_files": metadata.table(
                    rejects, {"path": "string", "error": "string"}, REJECTS_LISTED, root=images.path_root()
                ),
                "images_root": MetadataValue.path(images.uri),
            },
        )
