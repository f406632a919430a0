"""fruits-assets: image collections -> MobileNetV2 features -> PCA, as Dagster assets on PySpark.

``defs`` is built on first access (PEP 562): Spark's Python workers import this package to
unpickle the featurization task and must not pay for importing Dagster, pandas-on-Spark or TF.
"""

__all__ = ["defs"]


def __getattr__(name: str):
    if name == "defs":
        from .definitions import build_definitions

        value = globals()["defs"] = build_definitions()
        return value
    raise AttributeError(f"module 'fruits_assets' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + ["defs"])
