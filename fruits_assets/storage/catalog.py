"""Read published outputs without knowing the storage layout (notebooks, scripts):

    from fruits_assets.storage.catalog import load, versions
    pca = load("image_pca")                   # pandas, the last published version
    features = load("image_features", spark=spark)   # a Spark DataFrame instead
    model = load("pca_model")                 # fruits_assets.analysis.pca.PcaModel
    report = probe_report()                   # the feature probe's numbers (accuracy, worst classes, ...)
    old = load("image_pca", version=versions("image_pca")[0])

The root is the deployment's (FRUITS_DEPLOYMENT: local ``FRUITS_DATA_ROOT``, emr
``s3://$FRUITS_S3_BUCKET/assets``), or ``root=`` given explicitly.
"""

from __future__ import annotations

import json

from .. import settings
from ..names import FEATURE_MODEL, FEATURE_PROBE, MODELS, PCA_MODEL, TABLES
from .codecs import FEATURE_MODEL as FEATURE_MODEL_CODEC
from .codecs import PCA, read_table
from .fs import filesystem, join
from .ledger import RunLedger
from .sidecars import PROBED
from .versions import FIGURES_DIR, VersionedStore


def store(root: str | None = None) -> VersionedStore:
    if root is not None:
        return VersionedStore(root, settings.s3_endpoint_url())
    if settings.deployment() == "emr":
        return VersionedStore(
            f"s3://{settings.require('FRUITS_S3_BUCKET')}/assets", settings.s3_endpoint_url(), settings.aws_region()
        )
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
    run = settings.catalog_run()
    if version is None and run:
        # The report executes this notebook during its run, before the run publishes: read what
        # the run itself wrote or read.
        seen = RunLedger(s, run).lookup(asset)
        if seen is not None:
            return seen.uri
    if version is None:
        return s.require_current(asset).uri
    version = version[2:] if version.startswith("v=") else version
    if not s.is_published_version(asset, version):
        raise FileNotFoundError(
            f"{asset} has no published version {version!r} under {s.root} "
            f"(kept: {', '.join(versions(asset, root)) or 'none'})"
        )
    return s.version_uri(asset, version)


def load(asset: str, version: str | None = None, spark=None, root: str | None = None):
    """The published ``asset``: a pandas DataFrame (a Spark DataFrame with ``spark=``) for tables,
    a ``PcaModel`` for pca_model, ``(tflite bytes, provenance dict)`` for feature_model."""
    where = uri(asset, version, root)
    s = store(root)
    if asset == PCA_MODEL:
        return PCA.read(s, where)
    if asset == FEATURE_MODEL:
        model = FEATURE_MODEL_CODEC.read(s, where)
        return model.model_bytes, model.provenance
    if spark is not None:
        return spark.read.parquet(where)
    return read_table(s, where)


def probe_report(version: str | None = None, root: str | None = None) -> dict:
    """The feature probe's numbers (what its metadata shows, per class included) as a dict."""
    return json.loads(store(root).read_bytes(join(uri(FEATURE_PROBE, version, root), PROBED)))


def figure(asset: str, name: str, version: str | None = None, root: str | None = None) -> bytes:
    """A PNG written beside a version (``explained_variance.png``, ``pc1_vs_pc2.png``, ``confusion.png``)."""
    return store(root).read_bytes(join(uri(asset, version, root), FIGURES_DIR, name))


def image_bytes(path: str) -> bytes:
    """The bytes of an image as the tables name it (``file:/...`` or ``s3://...``)."""
    local = path[len("file:") :] if path.startswith("file:") else path
    if "://" not in local:
        with open(local, "rb") as fh:
            return fh.read()
    fs, where = filesystem(local, settings.s3_endpoint_url(), settings.aws_region())
    with fs.open_input_stream(where) as fh:
        return fh.read()


__all__ = ["load", "versions", "uri", "probe_report", "figure", "image_bytes"]
