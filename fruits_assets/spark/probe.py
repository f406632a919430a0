"""A linear probe with Spark ML: multinomial logistic regression on published vectors.

Spark tasks read their parquet row groups (local or s3://, as the PCA does), keep the rows the
plan gives a role and hand Spark ML (label index, vector) rows; the driver collects only the
evaluated rows' predicted class (ints), never a vector. The same code runs on the EMR cluster.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Iterator

import numpy as np
import pandas as pd
import pyarrow as pa

from ..analysis.probe_metrics import ProbePlan, plan_roles, role_of
from ..storage.fs import Location
from .pca import _matrix, _read, _units_frame, row_groups

VECTOR_COLUMN = {"image_pca": "pca", "image_features": "features"}
_ROWS_DDL = "path string, role string, label double, vec array<float>"


@dataclass
class ProbeFit:
    plan: ProbePlan
    predictions: pd.DataFrame  # evaluated rows: path, label, split, predicted
    train_counts: dict  # label -> training rows
    fitted: bool  # False when training has fewer than 2 classes (nothing to fit)
    iterations: int
    train_seconds: float
    predict_seconds: float
    dim: int


def read_labels(files: list[str], location: Location) -> pd.DataFrame:
    """path, label, split of every row (no vectors: a few MB for Fruits-360)."""
    import pyarrow.dataset as ds

    if not files:
        return pd.DataFrame({c: pd.Series(dtype="object") for c in ("path", "label", "split")})
    fs, _ = location.filesystem(files[0])
    paths = [location.filesystem(f)[1] for f in files]
    return ds.dataset(paths, filesystem=fs, format="parquet").to_table(columns=["path", "label", "split"]).to_pandas()


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

    rows = read_labels(files, location)
    plan = plan_roles(rows, seed, max_train_per_class)
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
    role = rows["path"].map(plan.roles)
    train_counts = {str(k): int(v) for k, v in rows.loc[role == "train", "label"].value_counts().items()}
    evaluated = rows.loc[role == "eval", ["path", "label", "split"]].reset_index(drop=True)
    started = time.perf_counter()
    if len(train_counts) < 2:
        # One class (or none): nothing to tell apart, no model to fit. The "prediction" is that class.
        only = next(iter(train_counts), None)
        predictions = evaluated.assign(predicted=only)
        return ProbeFit(plan, predictions, train_counts, False, 0, 0.0, 0.0, dim)
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
    predicted = (
        model.transform(frame.where(F.col("role") == "eval"))
        .select("path", F.col("prediction").cast("int").alias("class"))
        .toPandas()
    )
    names = np.asarray(plan.classes, dtype=object)
    predicted["predicted"] = names[predicted["class"].to_numpy()] if len(predicted) else []
    predictions = evaluated.merge(predicted[["path", "predicted"]], on="path", how="left")
    if predictions["predicted"].isna().any():  # every evaluated row was read and predicted, or we say so
        missing = predictions.loc[predictions["predicted"].isna(), "path"]
        raise RuntimeError(f"feature_probe: {len(missing)} evaluated rows got no prediction, e.g. {missing.iloc[0]}")
    return ProbeFit(
        plan, predictions, train_counts, True, iterations, train_seconds, time.perf_counter() - started, dim
    )
