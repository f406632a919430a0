"""fruits-assets: image collections -> MobileNetV2 features -> PCA, as Dagster assets on PySpark.

The Dagster code location is :mod:`fruits_assets.definitions` (``defs``). This package itself
imports nothing: Spark's Python workers import it to unpickle their tasks and must not pay for
Dagster, pandas-on-Spark or TensorFlow.
"""
