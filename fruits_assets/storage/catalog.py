"""Read published outputs without knowing the storage layout (notebooks, scripts):

    from fruits_assets.catalog import load, versions
    pca = load("image_pca")                   # pandas, the last published version
    features = load("image_features", spark=spark)   # a Spark DataFrame instead
    model = load("pca_model")                 # fruits_assets.pca_math.PcaModel
    report = probe_report()                   # the feature probe's numbers (accuracy, worst classes, ...)
    old = load("image_pca", version=versions("image_pca")[0])

The root is the deployment's (FRUITS_DEPLOYMENT: local ``FRUITS_DATA_ROOT``, emr
``s3://$FRUITS_S3_BUCKET/assets``), or ``root=`` given explicitly.
"""

from __future__ import annotations

import json

from . import settings
from .storage import VersionedStore, join

TABLES = ("raw_images", "image_features", "image_rejects", "image_pca", "feature_probe")
MODELS = ("feature_model", "pca_model")


def store(root: str | None = None) -> VersionedStore:
    if root is not None:
        return VersionedStore(root, settings.s3_endpoint_url())
    if settings.deployment() == "emr":
        return VersionedStore(f"s3://{settings.require('FRUITS_S3_BUCKET')}/assets", settings.s3_endpoint_url(),
                              settings.aws_region())
    return VersionedStore(settings.data_root())


def versions(asset: str, root: str | None = None) -> list[str]:
    """Published versions of ``asset`` still kept, newest first."""
    s = store(root)
    return [v for v in reversed(s.versions(asset)) if s.is_published_version(asset, v)]


def uri(asset: str, version: str | None = None, root: str | None = None) -> str:
    """Where the published (or the pinned) version of ``asset`` lives."""
    if asset not in TABLES + MODELS:
        raise ValueError(f"unknown asset {asset!r}: one of {', '.join(TABLES + MODELS)}")
    s = store(root)
    if version is None:
        return s.require_current(asset).uri
    version = version[2:] if version.startswith("v=") else version
    if not s.is_published_version(asset, version):
        raise FileNotFoundError(f"{asset} has no published version {version!r} under {s.root} "
                                f"(kept: {', '.join(versions(asset, root)) or 'none'})")
    return s.version_uri(asset, version)


def load(asset: str, version: str | None = None, spark=None, root: str | None = None):
    """The published ``asset``: a pandas DataFrame (a Spark DataFrame with ``spark=``) for tables,
    a ``PcaModel`` for pca_model, ``(tflite bytes, provenance dict)`` for feature_model."""
    where = uri(asset, version, root)
    s = store(root)
    if asset == "pca_model":
        from .pca_math import load_npz

        return load_npz(s.read_bytes(join(where, "pca.npz")), s.read_bytes(join(where, "pca.json")))
    if asset == "feature_model":
        return s.read_bytes(join(where, "model.tflite")), json.loads(s.read_bytes(join(where, "provenance.json")))
    if spark is not None:
        return spark.read.parquet(where)
    import pyarrow.dataset as ds

    fs, path = s.fs(where)
    # Sidecars (_images.parquet, _PUBLISHED.json, _figures/) start with "_": the dataset skips them.
    return ds.dataset(path, filesystem=fs, format="parquet").to_table().to_pandas()


def probe_report(version: str | None = None, root: str | None = None) -> dict:
    """The feature probe's numbers (what its metadata shows, per class included) as a dict."""
    from .incremental import PROBED

    return json.loads(store(root).read_bytes(join(uri("feature_probe", version, root), PROBED)))


def figure(asset: str, name: str, version: str | None = None, root: str | None = None) -> bytes:
    """A PNG written beside a version (``explained_variance.png``, ``pc1_vs_pc2.png``, ``confusion.png``)."""
    from .storage import FIGURES_DIR

    return store(root).read_bytes(join(uri(asset, version, root), FIGURES_DIR, name))


def image_bytes(path: str) -> bytes:
    """The bytes of an image as the tables name it (``file:/...`` or ``s3://...``)."""
    local = path[len("file:"):] if path.startswith("file:") else path
    if "://" not in local:
        with open(local, "rb") as fh:
            return fh.read()
    from .storage import filesystem

    fs, where = filesystem(local, settings.s3_endpoint_url(), settings.aws_region())
    with fs.open_input_stream(where) as fh:
        return fh.read()


__all__ = ["load", "versions", "uri", "probe_report", "figure", "image_bytes"]
