"""IO manager: every asset output is a commit to its Delta table (storage/tables.py), made by the
step that computed it, after its blocking checks passed; every input is a committed version, the
same one for the whole run (the version this run committed, else the one its commits recorded)."""

from __future__ import annotations

import hashlib
import time
from typing import Any, Optional

import pandas as pd
import pyarrow as pa
import pyarrow.fs as pafs
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
from ..names import MODELS, REPORT
from ..settings import SettingsError
from ..storage.artifacts import NewParts, ParquetParts, WithFigures
from ..storage.codecs import BLOB_SCHEMA, blob_table, blobs_of, part_name, read_frame, read_model
from ..storage.fs import is_s3, join
from ..storage.pending import request_commit
from ..storage.tables import Lake, Snapshot, TableError
from ..storage.upkeep import collect
from .console import ExpectedFailure
from .run_config import check_run_config

# Versions of the inputs each step loaded (run id, step key) -> {asset: version}: its commit
# records them, so the lineage travels with the data. Input loading and output handling of one
# step happen in the same process.
_READS: dict[tuple[str, str], dict[str, int]] = {}
# The newest version of every table when this run's step process started: a whole-table output
# (inventory, rejects, models) is committed against it, so a run never silently replaces what
# another run committed meanwhile.
_STARTED: dict[str, dict[str, int | None]] = {}


PENDING = "pending: committed by the Dagster process once the EMR step succeeded"


def _fail(message: str):
    return expected_error(ExpectedFailure(message))


class TableIOManager(ConfigurableIOManager):
    """Tables, models and the report as Delta tables under ``root``."""

    root: str
    endpoint_url: Optional[str] = None
    region: Optional[str] = None
    keep_versions: int = 3
    min_age_hours: int = 24  # uncommitted or superseded files are removed once this old
    # emr: steps that run on the cluster (through the step launcher) only ask for their commit;
    # the Dagster process makes it once the EMR step succeeded (storage/pending.py).
    commit_by_launcher: bool = False

    @property
    def lake(self) -> Lake:
        return Lake(self.root, self.endpoint_url, self.region)

    def setup_for_execution(self, context: InitResourceContext) -> None:
        # The first code of ours a run executes: refuse a bad run config before any work, check
        # that the outputs root can be reached, and clean what earlier runs left.
        if not context.run_id:
            return
        if context.dagster_run is not None:
            try:
                check_run_config(context.dagster_run.run_config)
            except SettingsError as exc:
                raise expected_error(exc) from None
        try:
            self._check_root()
        except OSError as exc:  # a missing bucket, no credentials, a read-only folder
            raise _fail(
                f"outputs root {self.root} cannot be written: {str(exc).splitlines()[0]}; check "
                "FRUITS_DATA_ROOT (local) or FRUITS_S3_BUCKET, region and credentials (emr)"
            ) from None
        from ..names import ASSETS

        if context.run_id not in _STARTED:
            _STARTED[context.run_id] = {a: self.lake.latest_version(a) for a in ASSETS}
        try:
            collected = collect(self.lake, tuple(ASSETS), self.keep_versions, self.min_age_hours)
        except (OSError, TableError) as exc:  # cleaning up after others must never fail this run
            if context.log:
                context.log.warning(f"files of earlier runs not collected: {str(exc).splitlines()[0]}")
            return
        if context.log and collected.removed:
            context.log.info(f"upkeep: {collected.summary()} (uncommitted or beyond {self.keep_versions} versions)")

    def _check_root(self) -> None:
        fs, path = self.lake.fs(self.root)
        if not is_s3(self.root):
            fs.create_dir(path, recursive=True)
            return
        bucket = path.split("/", 1)[0]
        if fs.get_file_info(bucket).type == pafs.FileType.NotFound:
            raise OSError(f"bucket {bucket} not found")

    @staticmethod
    def _run_assets(step) -> set[str]:
        selection = step.dagster_run.asset_selection
        if not selection:  # in-process `materialize()` leaves it empty: the job holds just the selection
            selection = step.job_def.asset_layer.selected_asset_keys
        return {key.path[-1] for key in selection}

    def handle_output(self, context: OutputContext, obj: Any) -> None:
        if obj is None:
            return
        asset = context.asset_key.path[-1]
        lake = self.lake
        figures: dict[str, bytes] = {}
        if isinstance(obj, WithFigures):
            figures, obj = obj.figures, obj.value
        started = time.perf_counter()
        inputs = dict(_READS.get((context.run_id, context.step_context.step.key), {}))
        record: dict[str, Any] = {"run_id": context.run_id, "asset": asset, "inputs": inputs}
        step = context.step_context
        defer = self.commit_by_launcher and step.step_launcher is not None
        commit = self._committer(lake, context.run_id, step.step.key, defer, step.previous_attempt_count)
        try:
            record["figures"] = {name: lake.put_blob(asset, png, ".png") for name, png in figures.items()}
            if asset == REPORT:  # the UI's "View Notebook" renders a file: a content-addressed copy
                record["figures"]["report.ipynb"] = lake.put_blob(asset, blobs_of(obj)["report.ipynb"], ".ipynb")
            version, columns, committed = self._commit(lake, asset, obj, record, context.run_id, commit)
        except TableError as exc:
            if isinstance(obj, NewParts) and obj.prefix:
                lake.discard(obj.prefix)
            raise _fail(str(exc)) from None
        metadata: dict[str, Any] = {
            "dagster/uri": MetadataValue.path(lake.table_uri(asset)),
            "table_version": version,
            "committed": PENDING
            if defer and committed
            else f"version {version}"
            if committed
            else f"unchanged: version {version} still holds",
            "computed_from": MetadataValue.json(inputs) if inputs else "",
        }
        if columns:
            metadata["dagster/column_schema"] = TableSchema(columns=[TableColumn(n, t) for n, t in columns])
        files = record["figures"]
        if not committed and version >= 0:
            # Nothing new committed: link the files the standing version recorded (upkeep keeps
            # those; this run's copies are unreferenced and go).
            files = {**files, **(lake.commit_info(asset, version).get("figures") or {})}
        for name, rel in files.items():
            if name.endswith(".png"):
                metadata[f"figure_{name.rsplit('.', 1)[0]}"] = MetadataValue.path(join(lake.table_uri(asset), rel))
        if "report.ipynb" in files:
            metadata["notebook"] = MetadataValue.notebook(join(lake.table_uri(asset), files["report.ipynb"]))
        metadata["commit_seconds"] = round(time.perf_counter() - started, 2)
        context.add_output_metadata(metadata)
        if committed and not defer:
            context.log.info(f"committed {asset} version {version}")

    @staticmethod
    def _committer(lake: Lake, run_id: str, step_key: str, defer: bool, attempt: int):
        """Commit now, or (on the cluster) write the request the Dagster process commits; both
        return the version (the read one for a request: the real one comes with the commit)."""

        def commit(asset, schema, adds, removes, read_version, info) -> int:
            if not defer:
                return lake.commit(asset, schema, adds, removes, read_version, info)
            if not adds and not removes and read_version is not None:
                return read_version
            request_commit(lake, run_id, step_key, asset, schema, adds, removes, read_version, info, attempt)
            return -1 if read_version is None else read_version + 1

        return commit

    def _commit(self, lake: Lake, asset: str, obj: Any, record: dict, run_id: str, commit) -> tuple[int, tuple, bool]:
        """(version, columns, whether a commit was made or asked for)."""
        if isinstance(obj, NewParts):
            if not obj.changes:
                assert obj.read_version is not None
                return obj.read_version, obj.columns, False
            adds = lake.written(obj.prefix) if obj.prefix else []
            version = commit(asset, obj.schema, adds, list(obj.removes), obj.read_version, {**record, **obj.info})
            return version, obj.columns, version != obj.read_version
        started = _STARTED.get(run_id, {})
        read = started[asset] if asset in started else lake.latest_version(asset)
        current = lake.snapshot(asset, read, verify=False) if read is not None else None
        if isinstance(obj, pd.DataFrame):
            table = pa.Table.from_pandas(obj, preserve_index=False)
            columns = tuple((str(c), str(t)) for c, t in obj.dtypes.items())
            # The same rows as the standing version: no new version (overlapping runs that list
            # the same images then never conflict on it).
            record["content_sha256"] = hashlib.sha256(pd.util.hash_pandas_object(obj, index=False).values).hexdigest()
            if (
                current is not None
                and lake.commit_info(asset, current.version).get("content_sha256") == record["content_sha256"]
            ):
                return current.version, columns, False
        else:
            table = blob_table(blobs_of(obj))
            columns = tuple((f.name, str(f.type)) for f in BLOB_SCHEMA)
            if current is not None and self._same_blobs(lake, current, table):
                return current.version, columns, False  # the same bytes: nothing to write again
        name = lake.write_file(asset, part_name(run_id), table)
        removes = list(current.files) if current else []
        try:
            version = commit(asset, table.schema, [name], removes, read, record)
        except TableError:
            lake.discard_file(asset, name)
            raise
        return version, columns, True

    @staticmethod
    def _same_blobs(lake: Lake, current: Snapshot, table: pa.Table) -> bool:
        from ..storage.codecs import table_rows

        try:
            rows = table_rows(lake, current, ["name", "sha256"]).to_pydict()
        except TableError:
            return False
        new = table.select(["name", "sha256"]).to_pydict()
        return sorted(zip(rows["name"], rows["sha256"])) == sorted(zip(new["name"], new["sha256"]))

    def load_input(self, context: InputContext) -> Any:
        assert context.upstream_output is not None
        asset = context.upstream_output.asset_key.path[-1]
        step = context.step_context
        lake = self.lake
        try:
            others = tuple(sorted(self._run_assets(step) - {asset}))
            version = lake.version_of_run(asset, step.run_id, others)
            snap = lake.snapshot(asset, version) if version is not None else lake.snapshot(asset)
        except TableError as exc:
            raise _fail(str(exc)) from None
        if snap is None:
            name = step.op_def.name
            legacy = (
                " (outputs of the previous storage layout are not read: recomputed once)" if lake.legacy(asset) else ""
            )
            raise _fail(
                f"asset {asset!r} has no committed table under {self.root}{legacy}: materialize it first, "
                f"e.g. with --select '+{name}' ({name} and everything upstream)"
            )
        _READS.setdefault((step.run_id, step.step.key), {})[asset] = snap.version
        try:
            if asset in MODELS or asset == REPORT:
                return read_model(lake, snap)
            if context.dagster_type.typing_type is ParquetParts:
                return ParquetParts(
                    snap.uri, tuple(snap.file_uris()), snap.version, snap.info, self.endpoint_url, self.region
                )
            return read_frame(lake, snap)
        except TableError as exc:
            raise _fail(str(exc)) from None
