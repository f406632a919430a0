"""IO manager: every asset output goes to a new version folder through its stored kind's codec
(storage/codecs.py); the run ledger (storage/ledger.py) owns the publish protocol: a run's
outputs are published together once all of them are written and audited, and a run reads only
its own inputs."""

from __future__ import annotations

import time
from typing import Any, Optional

from dagster import (
    ConfigurableIOManager,
    InitResourceContext,
    InputContext,
    MetadataValue,
    OutputContext,
    TableColumn,
    TableSchema,
)

from ..errors import expected_error
from ..settings import SettingsError
from ..storage.artifacts import ParquetParts, WithFigures
from ..storage.codecs import NOTEBOOK, TABLE_KINDS, codec_for_kind, codec_for_value, read_table
from ..storage.fs import join
from ..storage.ledger import RunLedger
from ..storage.residue import collect
from ..storage.versions import FIGURES_DIR, VersionedStore
from .console import ExpectedFailure
from .run_config import check_run_config


class VersionedIOManager(ConfigurableIOManager):
    """Stores tables as parquet, the PCA model (npz) and the feature model under
    ``<root>/<asset>/v=<version>/`` and points ``_CURRENT.json`` at the new version last."""

    root: str
    endpoint_url: Optional[str] = None
    region: Optional[str] = None
    keep_versions: int = 3
    staging_uri: Optional[str] = None  # where dead runs' staged parts are collected from

    @property
    def store(self) -> VersionedStore:
        return VersionedStore(self.root, self.endpoint_url, self.region, self.keep_versions)

    def setup_for_execution(self, context: InitResourceContext) -> None:
        # Every asset's outputs go through here, so this is the first code of ours a run executes:
        # the place to refuse a bad run config before any work, and to own the run.
        if not context.run_id:
            return
        if context.dagster_run is not None:
            try:
                check_run_config(context.dagster_run.run_config)
            except SettingsError as exc:
                raise expected_error(exc) from None
        try:
            RunLedger(self.store, context.run_id).register_owner()
        except OSError as exc:  # a missing bucket, no credentials, a read-only folder
            raise expected_error(
                ExpectedFailure(
                    f"outputs root {self.root} cannot be written: {str(exc).splitlines()[0]}; check "
                    "FRUITS_DATA_ROOT (local) or FRUITS_S3_BUCKET, region and credentials (emr)"
                )
            ) from None
        self._collect_residue(context)

    def _collect_residue(self, context: InitResourceContext) -> None:
        try:
            collected = collect(
                self.store,
                self.staging_uri,
                context.instance,
                context.run_id,
                endpoint_url=self.endpoint_url,
                region=self.region,
            )
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
        figures: dict[str, bytes] = {}
        if isinstance(obj, WithFigures):
            figures, obj = obj.figures, obj.value
        try:
            codec = codec_for_value(obj)
        except TypeError as exc:
            raise TypeError(f"{asset}: {exc}") from None

        def write(uri: str):
            columns = codec.write(store, uri, obj)
            for name, png in figures.items():  # after the output: a staged folder is moved in as a whole
                store.write_bytes(join(uri, FIGURES_DIR, name), png)
            return columns

        started = time.perf_counter()
        stored = RunLedger(store, context.run_id).store_output(asset, codec.kind, write, self._run_assets(context))
        metadata: dict[str, Any] = {
            "dagster/uri": MetadataValue.path(stored.uri),
            "stored_at": MetadataValue.path(stored.uri),
            "version": stored.version,
        }
        if stored.written:
            metadata["dagster/column_schema"] = TableSchema(columns=[TableColumn(n, t) for n, t in stored.written])
        for name in figures:
            metadata[f"figure_{name.rsplit('.', 1)[0]}"] = MetadataValue.path(join(stored.uri, FIGURES_DIR, name))
        if codec is NOTEBOOK:  # the UI's "View Notebook" renders it on the asset page
            metadata["notebook"] = MetadataValue.notebook(join(stored.uri, NOTEBOOK.file))
        metadata["write_seconds"] = round(time.perf_counter() - started, 2)
        metadata["published"] = (
            f"with this run's other outputs: {', '.join(p.asset for p in stored.published)}"
            if stored.published
            else "pending: published when every asset of this run is written and audited"
        )
        context.add_output_metadata(metadata)
        if stored.published:
            context.log.info(
                f"published {len(stored.published)} outputs of run {context.run_id[:8]}: "
                + ", ".join(f"{p.asset} v={p.version}" for p in stored.published)
            )

    def load_input(self, context: InputContext) -> Any:
        assert context.upstream_output is not None
        asset = context.upstream_output.asset_key.path[-1]
        try:
            published = RunLedger(self.store, context.step_context.run_id).pinned_input(asset)
        except FileNotFoundError as exc:
            step = context.step_context.op_def.name
            raise expected_error(
                ExpectedFailure(f"{exc}, e.g. with --select '+{step}' ({step} and everything upstream)")
            ) from None
        kind = published.info.get("kind")
        codec = codec_for_kind(kind, f"{asset} {published.uri}")
        if kind in TABLE_KINDS:
            if context.dagster_type.typing_type is ParquetParts:
                return ParquetParts(published.uri, self.endpoint_url, self.region)
            return read_table(self.store, published.uri)
        return codec.read(self.store, published.uri)
