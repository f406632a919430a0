"""A linear probe with Spark ML: multinomial logistic regression on published vectors.

Spark computes the plan (roles, per-class caps) over the rows' labels; tasks read their parquet
row groups (local or s3://, as the PCA does), keep the rows the plan gives a role and hand Spark
ML (label index, vector) rows; the driver gets counts (per role, per class, the confusion
pairs), never a row. The same code runs on the EMR cluster.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Iterator

import pyarrow as pa

from ..analysis.probe_metrics import EVAL_SPLIT, HOLDOUT_FRACTION, TRAIN_SPLIT, ProbePlan, role_of, row_hash, split_rule
from ..storage.fs import Location
from .pca import _matrix, _read, _units_frame, row_groups
from .plan import read_files

VECTOR_COLUMN = {"image_pca": "pca", "image_features": "features"}
_ROWS_DDL = "path string, role string, label double, vec array<float>"


@dataclass
class ProbeFit:
    plan: ProbePlan
    pairs: dict  # (true label, predicted label) -> evaluated rows
    predictions: object  # DataFrame of the evaluated rows: path, label, split, predicted, correct
    train_counts: dict  # label -> training rows
    fitted: bool  # False when training has fewer than 2 classes (nothing to fit)
    iterations: int
    train_seconds: float
    predict_seconds: float
    dim: int


def plan_in_spark(spark, files: list[str], location: Location, seed: int, max_train_per_class: int):
    """The probe's plan (:func:`fruits_assets.analysis.probe_metrics.plan_roles`, the same rule)
    computed by Spark over the rows' path, label and split: the driver gets per-class and
    per-role counts and the per-class thresholds of capped classes, never a row.
    Returns (plan, DataFrame of path, label, split, role)."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    labels = read_files(spark, files, ["path", "label", "split"], "path string, label string, split string", location)

    def hashed(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            h = [row_hash(p, seed) for p in batch.column("path").to_pylist()]
            yield batch.append_column("h", pa.array(h, pa.float64()))

    rows = labels.mapInArrow(hashed, "path string, label string, split string, h double").cache()
    splits = {r["split"] for r in rows.where(F.col("label").isNotNull()).select("split").distinct().collect()}
    has_split = TRAIN_SPLIT in splits and EVAL_SPLIT in splits
    if has_split:
        role = (
            F.when(F.col("split") == TRAIN_SPLIT, "train")
            .when(F.col("split") == EVAL_SPLIT, "eval")
            .otherwise("unused")
        )
    else:
        role = F.when(F.col("h") < 1 - HOLDOUT_FRACTION, "train").otherwise("eval")
    rows = rows.withColumn("role", F.when(F.col("label").isNull(), "unlabelled").otherwise(role))
    thresholds: dict[str, float] = {}
    if max_train_per_class > 0:
        # The k-th smallest hash of each class with more than k training rows (ties kept, as role_of).
        ranked = rows.where(F.col("role") == "train").withColumn(
            "rank", F.row_number().over(Window.partitionBy("label").orderBy("h", "path"))
        )
        thresholds = {r["label"]: float(r["h"]) for r in ranked.where(F.col("rank") == max_train_per_class).collect()}
        over = {r["label"] for r in ranked.where(F.col("rank") == max_train_per_class + 1).select("label").collect()}
        thresholds = {k: v for k, v in thresholds.items() if k in over}
    if thresholds:
        limits = spark.createDataFrame(list(thresholds.items()), "label string, limit double")
        rows = (
            rows.join(F.broadcast(limits), "label", "left")
            .withColumn(
                "role",
                F.when((F.col("role") == "train") & (F.col("h") > F.col("limit")), "unused").otherwise(F.col("role")),
            )
            .drop("limit")
        )
    counts = rows.groupBy("role", "label").count().collect()
    role_counts: dict[str, int] = {}
    for r in counts:
        role_counts[r["role"]] = role_counts.get(r["role"], 0) + r["count"]
    classes = sorted({r["label"] for r in counts if r["label"] is not None})
    train_counts = {r["label"]: int(r["count"]) for r in counts if r["role"] == "train"}
    plan = ProbePlan(
        role_counts,
        classes,
        split_rule(has_split, seed, max_train_per_class if thresholds else 0),
        has_split,
        thresholds,
    )
    return plan, train_counts, rows.select("path", "label", "split", "role")


def native_blas_missing(spark) -> str | None:
    """Why Spark ML would be slow here, or None. Its logistic regression runs its matrix products
    through netlib: native BLAS (``libblas.so.3``, e.g. Debian's libopenblas0) when the driver has
    one, else Java code that needs the C2 JIT to be fast; the local deployment runs the JVM C1-only
    (featurization is faster so), where that fallback measured 23x slower (README, "Performance")."""
    import ctypes

    try:
        ctypes.CDLL("libblas.so.3")
        return None
    except OSError:
        pass
    if "TieredStopAtLevel=1" not in (spark.conf.get("spark.driver.extraJavaOptions", "") or ""):
        return None
    return (
        "no native BLAS (libblas.so.3) for Spark ML on this machine: the probe's logistic regression "
        "runs ~20x slower; install one (`apt-get install libopenblas0-pthread`, as `make demo`/`make test` do)"
    )


def _first_length(units, location: Location, uri: str, column: str) -> int:
    """The vector length of the input (every row has it: the input's blocking dims check)."""
    for unit in units:
        if unit.rows:
            table = _read(location.filesystem(uri)[0], unit.path, unit.index, [column])
            return int(len(table.column(column)[0]))
    return 0


def fit_probe(
    spark,
    files: list[str],
    location: Location,
    vector_column: str,
    seed: int,
    max_train_per_class: int,
    reg_param: float,
    max_iter: int,
    tol: float = 1e-4,
) -> ProbeFit:
    from pyspark import StorageLevel
    from pyspark.ml.classification import LogisticRegression
    from pyspark.ml.functions import array_to_vector
    from pyspark.sql import functions as F

    plan, train_counts, rows = plan_in_spark(spark, files, location, seed, max_train_per_class)
    index = {label: float(i) for i, label in enumerate(plan.classes)}
    has_split, thresholds, store_uri = plan.has_split, plan.train_thresholds, files[0] if files else ""
    units = row_groups(files, location)
    dim = _first_length(units, location, store_uri, vector_column)

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        fs = location.filesystem(store_uri)[0]
        for batch in batches:
            for unit_path, group in zip(batch.column("path").to_pylist(), batch.column("index").to_pylist()):
                table = _read(fs, unit_path, group, ["path", "label", "split", vector_column])
                matrix, ok = _matrix(table.column(vector_column))
                if not ok.all() or (len(matrix) and matrix.shape[1] != dim):
                    # Cannot happen in a published input (image_pca's and image_features' blocking dims
                    # checks): a row left out here would silently bias the numbers, so stop instead.
                    raise ValueError(
                        f"feature_probe: {unit_path} row group {group} has vectors whose length is "
                        f"not {dim}: the input did not pass its dims check"
                    )
                paths, labels, splits = (table.column(c).to_pylist() for c in ("path", "label", "split"))
                roles = [role_of(p, lab, s, seed, has_split, thresholds) for p, lab, s in zip(paths, labels, splits)]
                keep = [i for i, r in enumerate(roles) if r in ("train", "eval")]
                if not keep:
                    continue
                vectors = matrix[keep]
                yield pa.RecordBatch.from_pydict(
                    {
                        "path": [paths[i] for i in keep],
                        "role": [roles[i] for i in keep],
                        "label": [index[labels[i]] for i in keep],
                        "vec": pa.FixedSizeListArray.from_arrays(vectors.reshape(-1), vectors.shape[1]).cast(
                            pa.list_(pa.float32())
                        ),
                    },
                    schema=pa.schema(
                        [
                            ("path", pa.string()),
                            ("role", pa.string()),
                            ("label", pa.float64()),
                            ("vec", pa.list_(pa.float32())),
                        ]
                    ),
                )

    frame = (
        _units_frame(spark, units)
        .mapInArrow(run, _ROWS_DDL)
        .select("path", "role", "label", array_to_vector(F.col("vec")).alias("features"))
    )
    evaluated = rows.where(F.col("role") == "eval").select("path", "label", "split")
    started = time.perf_counter()
    if len(train_counts) < 2:
        # One class (or none): nothing to tell apart, no model to fit. The "prediction" is that class.
        only = next(iter(train_counts), None)
        predictions = evaluated.withColumn("predicted", F.lit(only).cast("string"))
        pairs = _pairs(predictions)
        return ProbeFit(plan, pairs, _with_correct(predictions), train_counts, False, 0, 0.0, 0.0, dim)
    train = frame.where(F.col("role") == "train").persist(StorageLevel.MEMORY_AND_DISK)
    try:
        lr = LogisticRegression(
            family="multinomial", maxIter=max_iter, regParam=reg_param, tol=tol, standardization=True
        )
        model = lr.fit(train)
        iterations = int(model.summary.totalIterations)
    finally:
        train.unpersist()
    train_seconds = time.perf_counter() - started
    started = time.perf_counter()
    names = spark.createDataFrame(list(enumerate(plan.classes)), "class int, predicted string")
    predicted = (
        model.transform(frame.where(F.col("role") == "eval"))
        .select("path", F.col("prediction").cast("int").alias("class"))
        .join(F.broadcast(names), "class")
        .drop("class")
    )
    predictions = evaluated.join(predicted, "path", "left").persist(StorageLevel.MEMORY_AND_DISK)
    pairs = _pairs(predictions)
    # Every evaluated row was read and predicted, or we say so.
    missing = sum(k for (_, p), k in pairs.items() if p is None)
    if missing:
        raise RuntimeError(f"feature_probe: {missing} evaluated rows got no prediction")
    return ProbeFit(
        plan,
        pairs,
        _with_correct(predictions),
        train_counts,
        True,
        iterations,
        train_seconds,
        time.perf_counter() - started,
        dim,
    )


def _pairs(predictions) -> dict:
    """(true label, predicted label) -> rows, counted by Spark (at most classes^2 entries)."""
    return {
        (r["label"], r["predicted"]): int(r["count"])
        for r in predictions.groupBy("label", "predicted").count().collect()
    }


def _with_correct(predictions):
    from pyspark.sql import functions as F

    return predictions.withColumn("correct", F.coalesce(F.col("label") == F.col("predicted"), F.lit(False)))
