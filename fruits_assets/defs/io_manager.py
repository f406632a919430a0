"""IO manager: every asset output goes to a new version folder; a run's outputs are published
together once all of them are written and audited, and a run reads only its own inputs
(:mod:`fruits_assets.run_ledger`)."""

from __future__ import annotations

import json
import time
from typing import Any, Optional

import pandas as pd
from dagster import (
    ConfigurableIOManager,
    InitResourceContext,
    InputContext,
    MetadataValue,
    OutputContext,
    TableColumn,
    TableSchema,
)

from .artifacts import FeatureModelArtifact, ParquetParts, StagedParquet, WithFigures
from .pca_math import PcaModel, load_npz, save_npz
from .resources import FruitsSpark
from .run_ledger import RunLedger
from .storage import FIGURES_DIR, VersionedStore, join

MODEL_FILE = "model.tflite"
PROVENANCE_FILE = "provenance.json"
PCA_ARRAYS_FILE = "pca.npz"   # mean, scale, components, explained variance: fruits_assets.pca_math.load_npz
PCA_META_FILE = "pca.json"


def _is_spark_df(obj: Any) -> bool:
    return type(obj).__module__.startswith("pyspark.sql") and hasattr(obj, "write")


class VersionedIOManager(ConfigurableIOManager):
    """Stores Spark/pandas tables as parquet, the PCA model (npz) and the feature model under
    ``<root>/<asset>/v=<version>/`` and points ``_CURRENT.json`` at the new version last."""

    root: str
    pyspark: FruitsSpark
    endpoint_url: Optional[str] = None
    region: Optional[str] = None
    keep_versions: int = 3
    staging_uri: Optional[str] = None  # where dead runs' staged parts are collected from

    @property
    def store(self) -> VersionedStore:
        return VersionedStore(self.root, self.endpoint_url, self.region, self.keep_versions)

    def setup_for_execution(self, context: InitResourceContext) -> None:
        if not context.run_id:
            return
        # Every asset's outputs go through here, so this is the first code of ours a run executes:
        # the place to refuse a bad run config before any work (see run_config.py).
        from .run_config import check_run_config
        from .settings import SettingsError, expected_error

        if context.dagster_run is not None:
            try:
                check_run_config(context.dagster_run.run_config)
            except SettingsError as exc:
                raise expected_error(exc) from None
        RunLedger(self.store, context.run_id).register_owner()
        from .residue import collect

        try:
            collected = collect(self.store, self.staging_uri, context.instance, context.run_id,
                                endpoint_url=self.endpoint_url, region=self.region)
        except OSError as exc:  # cleaning up after others must never fail this run
            if context.log:
                context.log.warning(f"residue of earlier runs not collected: {exc}")
            return
        if context.log and (collected.runs or collected.staged or collected.marked_failed):
            context.log.info(f"residue of dead runs: {collected.summary()}")

    @staticmethod
    def _run_assets(context: OutputContext) -> set[str]:
        """The assets this run was asked to materialize: its outputs are published together
        once every one of them is written."""
        step = context.step_context
        selection = step.dagster_run.asset_selection
        if not selection:  # in-process `materialize()` leaves it empty: the job holds just the selection
            selection = step.job_def.asset_layer.selected_asset_keys
        return {key.path[-1] for key in selection}

    def handle_output(self, context: OutputContext, obj: Any) -> None:
        if obj is None:
            return
        asset = context.asset_key.path[-1]
        store = self.store
        ledger = RunLedger(store, context.run_id)
        version = store.new_version(context.run_id)
        uri = store.version_uri(asset, version)
        metadata: dict[str, Any] = {"dagster/uri": MetadataValue.path(uri), "stored_at": MetadataValue.path(uri),
                                    "version": version}
        started = time.perf_counter()
        ledger.writing(asset, version, {"run_id": context.run_id})
        figures = {}
        if isinstance(obj, WithFigures):
            figures, obj = obj.figures, obj.value
        if _is_spark_df(obj):
            writer = obj.write.mode("errorifexists")
            if any(f.dataType.simpleString().startswith("array<") for f in obj.schema.fields):
                # Feature vectors never repeat: dictionary pages would be built and thrown away.
                writer = writer.option("parquet.enable.dictionary", "false")
            writer.parquet(uri)
            kind = "spark_parquet"
            metadata["dagster/column_schema"] = TableSchema(
                columns=[TableColumn(f.name, f.dataType.simpleString()) for f in obj.schema.fields])
        elif isinstance(obj, StagedParquet):
            store.adopt(obj.uri, uri)
            kind = "spark_parquet"
            metadata["dagster/column_schema"] = TableSchema(
                columns=[TableColumn(name, typ) for name, typ in obj.columns])
        elif isinstance(obj, pd.DataFrame):
            import pyarrow as pa
            import pyarrow.parquet as pq

            fs, path = store.fs(uri)
            fs.create_dir(path, recursive=True)
            pq.write_table(pa.Table.from_pandas(obj, preserve_index=False), f"{path}/part-00000.parquet",
                           filesystem=fs)
            kind = "parquet"
            metadata["dagster/column_schema"] = TableSchema(
                columns=[TableColumn(str(c), str(t)) for c, t in obj.dtypes.items()])
        elif isinstance(obj, FeatureModelArtifact):
            store.write_bytes(join(uri, MODEL_FILE), obj.model_bytes)
            store.write_bytes(join(uri, PROVENANCE_FILE), json.dumps(obj.provenance, indent=2).encode())
            kind = "feature_model"
        elif isinstance(obj, PcaModel):
            arrays, meta = save_npz(obj)
            store.write_bytes(join(uri, PCA_ARRAYS_FILE), arrays)
            store.write_bytes(join(uri, PCA_META_FILE), meta)
            kind = "pca_npz"
        else:
            raise TypeError(f"{asset}: cannot store a {type(obj).__name__}")
        for name, png in figures.items():  # after the output: a staged folder is moved in as a whole
            store.write_bytes(join(uri, FIGURES_DIR, name), png)
            metadata[f"figure_{name.rsplit('.', 1)[0]}"] = MetadataValue.path(join(uri, FIGURES_DIR, name))
        metadata["write_seconds"] = round(time.perf_counter() - started, 2)
        ledger.written(asset, version, {"kind": kind, "run_id": context.run_id})
        published = ledger.publish_if_complete(self._run_assets(context))
        metadata["published"] = (
            f"with this run's other outputs: {', '.join(p.asset for p in published)}" if published
            else "pending: published when every asset of this run is written and audited")
        context.add_output_metadata(metadata)
        if published:
            context.log.info(f"published {len(published)} outputs of run {context.run_id[:8]}: "
                             + ", ".join(f"{p.asset} v={p.version}" for p in published))

    def load_input(self, context: InputContext) -> Any:
        asset = context.upstream_output.asset_key.path[-1]
        published = RunLedger(self.store, context.step_context.run_id).pinned_input(asset)
        kind = published.info.get("kind")
        if kind == "feature_model":
            provenance = json.loads(self.store.read_bytes(join(published.uri, PROVENANCE_FILE)))
            return FeatureModelArtifact(self.store.read_bytes(join(published.uri, MODEL_FILE)), provenance)
        if kind == "pca_npz":
            return load_npz(self.store.read_bytes(join(published.uri, PCA_ARRAYS_FILE)),
                            self.store.read_bytes(join(published.uri, PCA_META_FILE)))
        if kind == "spark_ml":  # written before 2026-11-27: nothing reads a Spark ML pipeline any more
            raise TypeError(f"{asset}: the published version {published.version} is an old Spark ML model; "
                            f"materialize {asset} again (it is now stored as pca.npz)")
        if kind in ("parquet", "spark_parquet"):
            if context.dagster_type.typing_type is ParquetParts:
                return ParquetParts(published.uri, self.endpoint_url, self.region)
            if self._spark_wanted(context):
                return self.pyspark.spark_session.read.parquet(published.uri)
            import pyarrow.dataset as ds

            fs, path = self.store.fs(published.uri)
            return ds.dataset(path, filesystem=fs, format="parquet").to_table().to_pandas()
        raise TypeError(f"{asset}: unknown stored kind {kind!r} in {published.uri}")

    @staticmethod
    def _spark_wanted(context: InputContext) -> bool:
        typ = context.dagster_type.typing_type
        return getattr(typ, "__module__", "").startswith("pyspark")
