"""Spark ML PCA over the feature vectors: optional StandardScaler, k from a variance target."""

from __future__ import annotations

from dataclasses import dataclass

from .pca_selection import KSelection, select_k

VECTOR_COL = "features_vec"


@dataclass
class PcaFit:
    model: object              # pyspark.ml.PipelineModel
    selection: KSelection
    ratios: list[float]         # per-component explained-variance ratios (probe fit)
    fitted_on: str              # "Training split" | "all rows"
    fit_rows: int


def as_vectors(features_df):
    """Add the ``features_vec`` ML vector column Spark ML estimators need."""
    from pyspark.ml.functions import array_to_vector

    return features_df.withColumn(VECTOR_COL, array_to_vector("features"))


def _pipeline(k: int, standardize: bool):
    from pyspark.ml import Pipeline
    from pyspark.ml.feature import PCA, StandardScaler

    stages = []
    pca_input = VECTOR_COL
    if standardize:
        stages.append(StandardScaler(inputCol=VECTOR_COL, outputCol="scaled", withMean=True, withStd=True))
        pca_input = "scaled"
    stages.append(PCA(k=k, inputCol=pca_input, outputCol="pca_vec"))
    return Pipeline(stages=stages)


def fit_pca(features_df, target: float = 0.95, max_k: int = 512, standardize: bool = False) -> PcaFit:
    """Fit on the Training split when present (all rows otherwise), choosing k from the target.

    One probe fit with ``min(dim, max_k, rows)`` components gives the explained-variance curve;
    when the chosen k is smaller, the pipeline is refitted with exactly k components so the saved
    model outputs k columns.
    """
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    train = features_df.where(F.col("split") == "Training")
    fitted_on = "Training split"
    if train.limit(1).count() == 0:
        train, fitted_on = features_df, "all rows"
    train = as_vectors(train).select(VECTOR_COL).persist(StorageLevel.MEMORY_AND_DISK)
    try:
        rows = train.count()
        if rows < 2:
            raise ValueError(f"PCA needs at least 2 feature rows to fit, got {rows}")
        dim = len(features_df.select("features").first()[0])
        probe_k = max(1, min(dim, max_k, rows))
        probe = _pipeline(probe_k, standardize).fit(train)
        ratios = [float(v) for v in probe.stages[-1].explainedVariance.toArray()]
        selection = select_k(ratios, target, max_k)
        model = probe if selection.k == probe_k else _pipeline(selection.k, standardize).fit(train)
        return PcaFit(model, selection, ratios, fitted_on, rows)
    finally:
        train.unpersist()


def project(model, features_df):
    """Apply a fitted pipeline: ``path, label, split, pca float[k]``."""
    from pyspark.ml.functions import vector_to_array

    out = model.transform(as_vectors(features_df))
    return out.select("path", "label", "split",
                      vector_to_array("pca_vec", dtype="float32").alias("pca"))


def components(model) -> int:
    return int(model.stages[-1].getK())
