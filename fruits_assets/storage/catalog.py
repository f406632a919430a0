"""Read committed outputs without knowing the storage layout (notebooks, scripts):

    from fruits_assets.storage.catalog import load, history
    pca = load("image_pca")                          # pandas, the newest committed version
    features = load("image_features", spark=spark)   # a Spark DataFrame instead
    model = load("pca_model")                        # fruits_assets.analysis.pca.PcaModel
    old = load("image_pca", version=3)               # time travel: a version number ...
    then = load("image_pca", as_of="2026-12-04T10:00:00Z")   # ... or a moment
    report = probe_report()                          # the feature probe's numbers
    together = consistent()                          # {asset: version} computed from each other

Whatever the number of images, these hold a bounded amount in memory (a batch at a time):

    per_class = counts("image_features", ["label", "split"])   # a streamed group-by count
    wrong = head("feature_probe", 10, where=("correct", False)) # the first matching rows
    for batch in batches("image_features", ["path", "features"]): ...

Every table is a Delta table at ``<root>/<asset>``: DuckDB (``delta_scan``), pandas/Polars
(``deltalake``), Spark with Delta and Athena read it directly (README "Outputs").

The root is the deployment's (FRUITS_DEPLOYMENT: local ``FRUITS_DATA_ROOT``, emr
``s3://$FRUITS_S3_BUCKET/assets``), or ``root=`` given explicitly.
"""

from __future__ import annotations

from .. import settings
from ..names import ASSETS, FEATURE_MODEL, FEATURE_PROBE, IMAGE_FEATURES, IMAGE_PCA, MODELS, PCA_MODEL, REPORT
from .codecs import read_frame, read_model
from .fs import filesystem, join
from .tables import Lake, Snapshot


def lake(root: str | None = None) -> Lake:
    if root is not None:
        return Lake(root, settings.s3_endpoint_url())
    if settings.deployment() == "emr":
        return Lake(
            f"s3://{settings.require('FRUITS_S3_BUCKET')}/assets", settings.s3_endpoint_url(), settings.aws_region()
        )
    return Lake(settings.data_root())


def _check(asset: str) -> None:
    if asset not in ASSETS:
        raise ValueError(f"unknown asset {asset!r}: one of {', '.join(ASSETS)}")


def history(asset: str, root: str | None = None) -> list[dict]:
    """The commits of ``asset``, newest first: version, timestamp (ms), the run and its inputs."""
    _check(asset)
    return lake(root).history(asset)


def versions(asset: str, root: str | None = None) -> list[int]:
    """Committed versions of ``asset``, newest first (older ones may have had their files removed
    by retention: see ``FRUITS_KEEP_VERSIONS``)."""
    return [h["version"] for h in history(asset, root)]


def snapshot(asset: str, version: int | None = None, as_of=None, root: str | None = None) -> Snapshot:
    """The committed version of ``asset`` read by default: during a run's report, the version that
    run committed or read (FRUITS_CATALOG_RUN); else ``version``/``as_of``; else the newest."""
    _check(asset)
    store = lake(root)
    run = settings.catalog_run()
    if version is None and as_of is None and run:
        version = store.version_of_run(asset, run, tuple(a for a in ASSETS if a != asset))
    snap = store.snapshot(asset, version, as_of)
    if snap is None:
        raise FileNotFoundError(f"asset {asset!r} has no committed table under {store.root}: materialize it first")
    return snap


def uri(asset: str, root: str | None = None) -> str:
    """Where the Delta table of ``asset`` lives."""
    _check(asset)
    return lake(root).table_uri(asset)


def load(asset: str, version: int | None = None, spark=None, root: str | None = None, as_of=None):
    """A committed ``asset``: a pandas DataFrame (a Spark DataFrame with ``spark=``) for tables,
    a ``PcaModel`` for pca_model, ``(tflite bytes, provenance dict)`` for feature_model."""
    store = lake(root)
    snap = snapshot(asset, version, as_of, root)
    if asset in MODELS or asset == REPORT:
        value = read_model(store, snap)
        return (value.model_bytes, value.provenance) if asset == FEATURE_MODEL else value
    if spark is not None:
        # The files of this version, from the log: plain Spark reads them without Delta's jars.
        return spark.read.parquet(*snap.file_uris())
    return read_frame(store, snap)


def batches(asset: str, columns: list[str] | None = None, version: int | None = None, root: str | None = None):
    """The rows of a committed table, a pyarrow RecordBatch at a time (checksums verified)."""
    import pyarrow.parquet as pq

    store = lake(root)
    snap = snapshot(asset, version, root=root)
    for uri in snap.file_uris():
        fs, path = store.fs(uri)
        with fs.open_input_file(path) as fh:
            yield from pq.ParquetFile(fh, page_checksum_verification=True).iter_batches(
                batch_size=65_536, columns=columns
            )


def counts(asset: str, by: list[str], version: int | None = None, root: str | None = None):
    """Rows per value of the ``by`` columns (a pandas frame: ``by`` + ``rows``), counted batch by
    batch: memory grows with the number of groups, not of rows."""
    import pandas as pd
    import pyarrow as pa

    total: dict[tuple, int] = {}
    for batch in batches(asset, by, version, root):
        grouped = pa.Table.from_batches([batch]).group_by(by).aggregate([([], "count_all")]).to_pydict()
        for *key, n in zip(*(grouped[c] for c in by), grouped["count_all"]):
            total[tuple(key)] = total.get(tuple(key), 0) + n
    return pd.DataFrame([(*k, n) for k, n in total.items()], columns=[*by, "rows"])


def head(
    asset: str,
    n: int,
    columns: list[str] | None = None,
    where: tuple | None = None,
    version: int | None = None,
    root: str | None = None,
):
    """The first ``n`` rows (``where=(column, value)``: only rows with that value), as pandas."""
    import pandas as pd
    import pyarrow as pa
    import pyarrow.compute as pc

    taken, rows = [], 0
    for batch in batches(asset, columns if columns is None or where is None else [*columns, where[0]], version, root):
        if where is not None:
            batch = batch.filter(pc.equal(batch.column(where[0]), pa.scalar(where[1])))
        taken.append(batch.slice(0, n - rows))
        rows += len(taken[-1])
        if rows >= n:
            break
    if not taken:
        return pd.DataFrame(columns=columns)
    frame = pa.Table.from_batches(taken).to_pandas()
    return frame[columns] if columns else frame


def sample(asset: str, n: int, columns: list[str] | None = None, version: int | None = None, root: str | None = None):
    """About ``n`` rows spread over the table's files (the first n/files rows of each), as pandas."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    store = lake(root)
    snap = snapshot(asset, version, root=root)
    files = snap.file_uris()
    per_file, taken = max(1, n // max(1, len(files))), []
    for uri in files:
        fs, path = store.fs(uri)
        with fs.open_input_file(path) as fh:
            batch = next(
                pq.ParquetFile(fh, page_checksum_verification=True).iter_batches(per_file, columns=columns), None
            )
        if batch is not None:
            taken.append(batch)
    return pa.Table.from_batches(taken).to_pandas() if taken else read_frame(store, snap).head(0)


def probe_report(version: int | None = None, root: str | None = None) -> dict:
    """The feature probe's numbers (what its metadata shows, per class included) as a dict."""
    return snapshot(FEATURE_PROBE, version, root=root).info["report"]


def figure(asset: str, name: str, version: int | None = None, root: str | None = None) -> bytes:
    """A PNG recorded with a version (``explained_variance.png``, ``pc1_vs_pc2.png``, ``confusion.png``)."""
    store = lake(root)
    snap = snapshot(asset, version, root=root)
    rel = (snap.info.get("figures") or {})[name]
    from .fs import read_bytes

    return read_bytes(join(snap.uri, rel), store.location)


def consistent(root: str | None = None) -> dict[str, int]:
    """Versions of pca_model, image_pca and image_features that were computed from each other:
    the newest image_pca version whose model was fitted on the same image_features version it
    projected (recorded in the commits), whatever other runs committed since."""
    store = lake(root)
    for entry in store.history(IMAGE_PCA):
        inputs = entry["fruits"].get("inputs") or {}
        model_version, features_version = inputs.get(PCA_MODEL), inputs.get(IMAGE_FEATURES)
        if model_version is None or features_version is None:
            continue
        fitted_on = _fitted_on(store, int(model_version))
        # A reused model was fitted on an earlier version holding the same rows (same content key).
        same_rows = fitted_on is not None and _content_key(store, fitted_on) == _content_key(
            store, int(features_version)
        )
        if fitted_on == int(features_version) or same_rows:
            return {IMAGE_FEATURES: int(features_version), PCA_MODEL: int(model_version), IMAGE_PCA: entry["version"]}
    raise FileNotFoundError(
        f"no image_pca version under {store.root} records a model fitted on the features it projected"
    )


def _fitted_on(store: Lake, model_version: int) -> int | None:
    """The image_features version the pca_model version was fitted on (the model may have been
    reused: then the commit that first wrote it says)."""
    for entry in store.history(PCA_MODEL):
        if entry["version"] == model_version:
            value = (entry["fruits"].get("inputs") or {}).get(IMAGE_FEATURES)
            return None if value is None else int(value)
    return None


def _content_key(store: Lake, features_version: int) -> str | None:
    return store.commit_info(IMAGE_FEATURES, features_version).get("content_key")


def image_bytes(path: str) -> bytes:
    """The bytes of an image as the tables name it (``file:/...`` or ``s3://...``)."""
    local = path[len("file:") :] if path.startswith("file:") else path
    if "://" not in local:
        with open(local, "rb") as fh:
            return fh.read()
    fs, where = filesystem(local, settings.s3_endpoint_url(), settings.aws_region())
    with fs.open_input_stream(where) as fh:
        return fh.read()


__all__ = ["load", "history", "versions", "snapshot", "uri", "probe_report", "figure", "consistent", "image_bytes"]
