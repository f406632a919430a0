"""feature_probe: what the features are worth for fruit recognition (Spark ML logistic regression,
Training -> Test), reused while its inputs and settings are unchanged."""

import time
from typing import Any

import pandas as pd
import pyarrow as pa
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    MaterializeResult,
    MetadataValue,
    ResourceParam,
    asset,
)

from ..analysis.keys import probe_key
from ..analysis.plots import confusion_png, markdown_image
from ..analysis.probe_metrics import CHANCE_FACTOR, above_chance, evaluate_counts
from ..names import FEATURE_PROBE, GROUP, IMAGE_PCA
from ..spark.plan import write_rows
from ..spark.probe import VECTOR_COLUMN, ProbeFit, fit_probe, native_blas_missing
from ..storage.artifacts import ParquetParts, WithFigures
from . import metadata
from .checks import rounded
from .resources import FruitsSpark, PublishedOutputs
from .reuse import reuse_or_compute
from .run_config import ProbeConfig

CODE_VERSION = "spark-ml-logreg-v1"
ROWS_SCHEMA = pa.schema(
    [
        ("path", pa.string()),
        ("label", pa.string()),
        ("split", pa.string()),
        ("predicted", pa.string()),
        ("correct", pa.bool_()),
    ]
)


def _report(fit: ProbeFit, config: ProbeConfig) -> dict:
    """The probe's numbers (stored as ``_probe.json``, shown as metadata)."""
    report = evaluate_counts(fit.pairs, fit.train_counts)
    report.update(
        features=config.features,
        split_rule=fit.plan.split_rule,
        fitted=fit.fitted,
        iterations=fit.iterations,
        max_iter=config.max_iter,
        dim=fit.dim,
        train_seconds=round(fit.train_seconds, 2),
        predict_seconds=round(fit.predict_seconds, 2),
        rows_per_role=fit.plan.counts(),
    )
    if not fit.fitted:
        report["note"] = (
            f"{len(fit.train_counts)} class(es) in the training rows: nothing to tell apart, "
            "no model fitted; every evaluated image is 'predicted' as that class"
        )
    return report


def _metadata(report: dict, reused: bool, seconds: float, confusion: bytes) -> dict:
    worst = pd.DataFrame(
        report["worst_classes"], columns=["label", "rows", "accuracy", "most_confused_with", "confused_rows"]
    )
    rows_per_role = report["rows_per_role"]
    return {
        "dagster/row_count": report["eval_rows"],
        "accuracy": rounded(report["accuracy"]),
        "macro_f1": rounded(report["macro_f1"]),
        "chance_uniform": rounded(report["chance_uniform"]),
        "majority_class_rate": rounded(report["majority_rate"]),
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
        "worst_classes": metadata.table(
            worst,
            {
                "label": "string",
                "rows": "int",
                "accuracy": "float",
                "most_confused_with": "string",
                "confused_rows": "int",
            },
        ),
        "confusion": MetadataValue.md(markdown_image(confusion, "confusion among the most confused classes")),
        **({"note": report["note"]} if report.get("note") else {}),
    }


@asset(
    name=FEATURE_PROBE,
    code_version=CODE_VERSION,
    group_name=GROUP,
    kinds={"spark", "parquet"},
    check_specs=[
        AssetCheckSpec(
            "probe_above_chance",
            asset=FEATURE_PROBE,
            description=f"probe accuracy >= {CHANCE_FACTOR} x chance (the larger of the "
            "majority-class rate and 1/classes)",
        )
    ],
)
def feature_probe(
    context: AssetExecutionContext,
    config: ProbeConfig,
    image_pca: ParquetParts,
    image_features: ParquetParts,
    published: PublishedOutputs,
    pyspark: FruitsSpark,
    pyspark_step_launcher: ResourceParam[Any],
):
    """What the features are worth for fruit recognition: a multinomial logistic regression
    (Spark ML) trained on the Training split and evaluated on the Test split (a seeded 80/20 split
    when there is none), on the PCA projection or, by config, the raw features. One row per
    evaluated image: path, label, split, predicted, correct; the numbers are in metadata and in
    in the commit's record."""
    source = image_pca if config.features == IMAGE_PCA else image_features
    key = {"probe_key": probe_key(config.features, source.info, config.model_dump(), CODE_VERSION)}

    def compute(prefix: str) -> dict:
        slow = native_blas_missing(pyspark.spark_session)
        if slow:
            context.log.warning(slow)
        fit = fit_probe(
            pyspark.spark_session,
            list(source.files),
            source.location(),
            VECTOR_COLUMN[config.features],
            config.seed,
            config.max_train_rows_per_class,
            config.reg_param,
            config.max_iter,
            config.tol,
        )
        write_rows(fit.predictions, prefix, ROWS_SCHEMA, published.location())
        return {"report": _report(fit, config)}

    started = time.perf_counter()
    out = reuse_or_compute(FEATURE_PROBE, context.run_id, key, compute, published)
    if out.reused:
        # Same vectors, same settings: the same model and predictions. Carried byte for byte.
        context.log.info("probe inputs and settings unchanged: predictions and numbers reused")
    report, seconds = out.info["report"], time.perf_counter() - started
    passed, threshold, why = above_chance(report)
    (context.log.info if passed else context.log.warning)(
        f"probe on {report['features']}: {why}; {report['eval_rows']} evaluated images, {report['classes']} classes"
    )
    confusion = confusion_png(
        report["confusion"]["labels"], report["confusion"]["counts"], report["accuracy"], report["classes"]
    )
    return MaterializeResult(
        value=WithFigures(
            out.change(tuple((f.name, str(f.type)) for f in ROWS_SCHEMA), ROWS_SCHEMA), {"confusion.png": confusion}
        ),
        metadata=_metadata(report, out.reused, seconds, confusion),
        check_results=[
            AssetCheckResult(
                check_name="probe_above_chance",
                passed=passed,
                severity=AssetCheckSeverity.WARN,
                description=why,
                metadata={
                    "accuracy": rounded(report["accuracy"]),
                    "majority_class_rate": rounded(report["majority_rate"]),
                    "threshold": rounded(threshold),
                    "classes": report["classes"],
                },
            )
        ],
    )
