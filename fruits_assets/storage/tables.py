"""Every output is a Delta Lake table at ``<root>/<asset>/`` (delta-rs, no JVM).

Spark tasks (or the driver) write parquet files straight into the table's folder; nothing reads
them until the step that wrote them commits them, in one transaction, after its blocking checks
passed. Readers take the file list from the log, never from listing the folder, so a killed or
failed run changes nothing that readers see, and its files are garbage for :func:`collect`.

Commits are strict: each is made against the version its step read, with no automatic retry, so
two runs that planned from the same version cannot both commit; the later one fails in one line
and changes nothing. Each commit carries this product's record under ``fruits`` in its
``commitInfo``: the run, the versions of the tables it was computed from, the reuse keys, the
figures, so the lineage travels with the data.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from .fs import Location, is_s3, join

COMMIT_KEY = "fruits"
LOG_DIR = "_delta_log"
FILES_DIR = "_files"  # content-addressed figures and notebooks: "_" keeps Delta's vacuum off them
LEGACY_POINTER = "_CURRENT.json"  # the version-folder layout this replaced
RECENT_COMMITS = 8  # how far back a run looks for its own commits (a run commits each table once)


class TableError(Exception):
    """A table cannot be read or committed as asked: one line naming the table, the file and
    the command that repairs it."""


class CommitConflict(TableError):
    pass


@dataclass(frozen=True)
class FileEntry:
    path: str  # relative to the table folder, as the log spells it
    size: int
    rows: int | None


@dataclass(frozen=True)
class Snapshot:
    """One committed version of a table: its files (from the log) and this product's record."""

    asset: str
    uri: str
    version: int
    files: tuple[FileEntry, ...]
    info: dict = field(default_factory=dict)

    @property
    def rows(self) -> int:
        return sum(f.rows or 0 for f in self.files)

    def file_uri(self, entry: FileEntry) -> str:
        return join(self.uri, entry.path)

    def file_uris(self) -> list[str]:
        return [self.file_uri(f) for f in self.files]

    @property
    def run_id(self) -> str | None:
        return self.info.get("run_id")

    @property
    def inputs(self) -> dict[str, int]:
        return {k: int(v) for k, v in (self.info.get("inputs") or {}).items()}


def _stats(rows: int) -> str:
    return json.dumps({"numRecords": rows})


class Lake:
    """The tables under ``root`` (an absolute local folder or ``s3://bucket/prefix``)."""

    def __init__(self, root: str, endpoint_url: str | None = None, region: str | None = None):
        self.root = root.rstrip("/")
        self.endpoint_url = endpoint_url
        self.region = region

    @property
    def location(self) -> Location:
        return Location(self.endpoint_url, self.region)

    def fs(self, uri: str) -> tuple[pafs.FileSystem, str]:
        return self.location.filesystem(uri)

    def table_uri(self, asset: str) -> str:
        return join(self.root, asset)

    def _delta_uri(self, asset: str) -> str:
        uri = self.table_uri(asset)
        return "s3://" + uri.split("://", 1)[1] if is_s3(uri) else uri

    def storage_options(self) -> dict[str, str]:
        """delta-rs's S3 options: the endpoint and region given explicitly (credentials come from
        the environment or the instance profile). Commits use S3 conditional writes: no lock table."""
        if not is_s3(self.root):
            return {}
        options = {}
        if self.endpoint_url:
            options["AWS_ENDPOINT_URL"] = self.endpoint_url
            if self.endpoint_url.startswith("http://"):
                options["AWS_ALLOW_HTTP"] = "true"
        if self.region:
            options["AWS_REGION"] = self.region
        return options

    # -- reading ---------------------------------------------------------------------------

    def latest_version(self, asset: str) -> int | None:
        """The newest committed version, from the log's file names (one listing, no replay)."""
        fs, path = self.fs(join(self.table_uri(asset), LOG_DIR))
        versions = [
            int(i.base_name[:-5])
            for i in fs.get_file_info(pafs.FileSelector(path, allow_not_found=True))
            if i.base_name.endswith(".json") and i.base_name[:-5].isdigit()
        ]
        return max(versions) if versions else None

    def exists(self, asset: str) -> bool:
        return self.latest_version(asset) is not None

    def delta_table(self, asset: str, version: int | None = None, as_of=None):
        """The ``deltalake.DeltaTable`` of ``asset`` at ``version`` or ``as_of`` (a datetime or
        ISO string), the newest by default."""
        from deltalake import DeltaTable

        uri = self._delta_uri(asset)
        try:
            dt = DeltaTable(uri, version=version, storage_options=self.storage_options())
            if as_of is not None:
                dt.load_as_version(as_of)
        except Exception as exc:  # delta-rs raises its own kinds, all of which end here
            raise TableError(
                f"{asset}: table {self.table_uri(asset)} cannot be read at "
                f"{'version ' + str(version) if version is not None else as_of or 'its latest version'}: "
                f"{str(exc).splitlines()[0]}"
            ) from None
        return dt

    def commit_info(self, asset: str, version: int) -> dict:
        """This product's record in the commit of ``version`` (empty for a commit made elsewhere)."""
        uri = join(self.table_uri(asset), LOG_DIR, f"{version:020d}.json")
        fs, path = self.fs(uri)
        try:
            with fs.open_input_stream(path) as fh:
                lines = fh.read().decode().splitlines()
        except (FileNotFoundError, OSError):
            return {}
        for line in lines:
            try:
                action = json.loads(line)
            except ValueError:
                raise TableError(
                    f"{asset}: the log file {uri} is damaged (not JSON); restore it from a backup or "
                    f"remove the table folder {self.table_uri(asset)} and materialize it again"
                ) from None
            info = action.get("commitInfo", {}).get(COMMIT_KEY)
            if info is not None:
                return json.loads(info) if isinstance(info, str) else dict(info)
        return {}

    def snapshot(self, asset: str, version: int | None = None, as_of=None, verify: bool = True) -> Snapshot | None:
        """The committed files of ``asset`` at a version (the newest by default), checked against
        the folder (each file present with the size the log recorded) unless ``verify`` is False;
        None when the table was never committed."""
        if version is None and as_of is None and not self.exists(asset):
            return None
        dt = self.delta_table(asset, version, as_of)
        actions = pa.table(dt.get_add_actions(flatten=True)).to_pydict()
        files = tuple(
            sorted(
                (
                    FileEntry(p, int(s), None if r is None else int(r))
                    for p, s, r in zip(actions["path"], actions["size_bytes"], actions["num_records"])
                ),
                key=lambda f: f.path,
            )
        )
        snap = Snapshot(asset, self.table_uri(asset), dt.version(), files, self.commit_info(asset, dt.version()))
        if verify:
            self.verify(snap)
        return snap

    def verify(self, snap: Snapshot) -> None:
        """Every committed file is there with its recorded size: a deleted, truncated or extended
        part ends here in one line instead of in silently missing rows."""
        fs, path = self.fs(snap.uri)
        sizes = {
            i.path[len(path) :].lstrip("/"): i.size
            for i in fs.get_file_info(pafs.FileSelector(path, recursive=True, allow_not_found=True))
            if i.type == pafs.FileType.File
        }
        for entry in snap.files:
            found = sizes.get(entry.path)
            if found != entry.size:
                state = "is missing" if found is None else f"has {found} bytes where the log recorded {entry.size}"
                raise TableError(
                    f"{snap.asset} version {snap.version}: committed file {snap.file_uri(entry)} {state}; "
                    f"run `fruits-assets repair {snap.asset}` (drops damaged files from the table: the next run "
                    "recomputes their rows)"
                )

    def recent(self, asset: str, depth: int = RECENT_COMMITS) -> list[tuple[int, dict]]:
        """(version, record) of the newest commits, newest first."""
        latest = self.latest_version(asset)
        if latest is None:
            return []
        return [(v, self.commit_info(asset, v)) for v in range(latest, max(-1, latest - depth), -1)]

    def version_of_run(self, asset: str, run_id: str, others: tuple[str, ...] = ()) -> int | None:
        """The version of ``asset`` that run ``run_id`` committed, or else the version that the
        run's commits of ``others`` recorded as their input: a run reads one version of each table
        from start to end, whatever other runs commit meanwhile."""
        for version, info in self.recent(asset):
            if info.get("run_id") == run_id:
                return version
        for other in others:
            for _, info in self.recent(other):
                if info.get("run_id") == run_id and asset in (info.get("inputs") or {}):
                    return int(info["inputs"][asset])
        return None

    def legacy(self, asset: str) -> bool:
        """Outputs of the version-folder layout this replaced are there (and no table yet)."""
        fs, path = self.fs(join(self.table_uri(asset), LEGACY_POINTER))
        return fs.get_file_info(path).type == pafs.FileType.File and not self.exists(asset)

    # -- writing ---------------------------------------------------------------------------

    def new_prefix(self, asset: str, run_id: str) -> str:
        """Where one step writes its new files: ``<table>/part-<run>-<nonce>``; tasks append
        ``-<n>.parquet``. Nothing reads them until :meth:`commit`."""
        return join(self.table_uri(asset), f"part-{run_id[:8]}-{uuid.uuid4().hex[:6]}")

    def written(self, prefix: str) -> list[str]:
        """The files written under ``prefix`` (names relative to the table folder), sorted."""
        table_uri, _, stem = prefix.rpartition("/")
        fs, path = self.fs(table_uri)
        return sorted(
            i.base_name
            for i in fs.get_file_info(pafs.FileSelector(path, allow_not_found=True))
            if i.type == pafs.FileType.File and i.base_name.startswith(stem + "-") and i.base_name.endswith(".parquet")
        )

    def discard(self, prefix: str) -> None:
        """Delete what a failed step wrote under ``prefix`` (never committed: nobody reads it)."""
        table_uri = prefix.rpartition("/")[0]
        fs, path = self.fs(table_uri)
        for name in self.written(prefix):
            try:
                fs.delete_file(f"{path}/{name}")
            except OSError:
                pass

    def discard_file(self, asset: str, name: str) -> None:
        fs, path = self.fs(self.table_uri(asset))
        try:
            fs.delete_file(f"{path}/{name}")
        except OSError:
            pass

    def write_file(self, asset: str, name: str, table: pa.Table) -> str:
        """A parquet file the driver writes into the table's folder (uncommitted); returns its name."""
        fs, path = self.fs(self.table_uri(asset))
        if not is_s3(self.root):
            fs.create_dir(path, recursive=True)
        pq.write_table(table, f"{path}/{name}", filesystem=fs, write_page_checksum=True)
        return name

    def put_blob(self, asset: str, data: bytes, suffix: str) -> str:
        """A content-addressed file (figure, notebook) beside the table: written once, never
        changed; returns its path relative to the table folder."""
        import hashlib

        rel = f"{FILES_DIR}/{hashlib.sha256(data).hexdigest()}{suffix}"
        fs, path = self.fs(join(self.table_uri(asset), rel))
        info = fs.get_file_info(path)
        if info.type == pafs.FileType.File and info.size == len(data):
            return rel
        if not is_s3(self.root):
            fs.create_dir(path.rsplit("/", 1)[0], recursive=True)
            tmp = f"{path}.{uuid.uuid4().hex}.tmp"
            with fs.open_output_stream(tmp) as out:
                out.write(data)
            fs.move(tmp, path)
        else:
            with fs.open_output_stream(path) as out:  # one PUT: atomic
                out.write(data)
        return rel

    def commit(
        self,
        asset: str,
        schema,  # pyarrow or deltalake schema
        adds: list[str],
        removes: list[FileEntry],
        read_version: int | None,
        info: dict,
    ) -> int:
        """Commit ``adds`` (files already in the table folder) and ``removes`` in one transaction
        made against ``read_version`` (None: the table must not exist yet); returns the new version
        (``read_version`` itself when there is nothing to commit).
        Raises :class:`CommitConflict` when another commit came first: nothing is committed."""
        from deltalake import DeltaTable, Schema
        from deltalake.exceptions import CommitFailedError, DeltaError
        from deltalake.transaction import AddAction, CommitProperties, RemoveAction, create_table_with_add_actions

        fs, path = self.fs(self.table_uri(asset))
        actions: list = []
        for name in adds:
            file_info = fs.get_file_info(f"{path}/{name}")
            with fs.open_input_file(f"{path}/{name}") as fh:
                rows = pq.ParquetFile(fh).metadata.num_rows
            if rows == 0:  # a task that had no rows still wrote its file: nothing to commit
                fs.delete_file(f"{path}/{name}")
                continue
            mtime = int((file_info.mtime.timestamp() if file_info.mtime else time.time()) * 1000)
            actions.append(AddAction(name, int(file_info.size or 0), {}, mtime, True, _stats(rows)))
        now = int(time.time() * 1000)
        actions += [RemoveAction(f.path, True, now, f.size, {}) for f in removes]
        if not actions and read_version is not None:
            return read_version  # nothing changed (tasks wrote only empty files): no new version
        # A commit id tells, after an error, whether the log entry was written anyway (a post-commit
        # hook that failed, a conditional PUT whose answer was lost): then it is this commit.
        info = {**info, "commit_id": uuid.uuid4().hex}
        properties = CommitProperties(custom_metadata={COMMIT_KEY: json.dumps(info)}, max_commit_retries=0)
        options = self.storage_options()
        delta_schema = schema if isinstance(schema, Schema) else Schema.from_arrow(schema)
        try:
            if read_version is None:
                create_table_with_add_actions(
                    self._delta_uri(asset),
                    delta_schema,
                    actions,
                    mode="error",
                    storage_options=options,
                    commit_properties=properties,
                )
                return 0
            dt = DeltaTable(self._delta_uri(asset), version=read_version, storage_options=options)
            dt.create_write_transaction(actions, "append", delta_schema, commit_properties=properties)
        except (CommitFailedError, DeltaError) as exc:
            written = 0 if read_version is None else read_version + 1
            if self.commit_info(asset, written).get("commit_id") == info["commit_id"]:
                return written
            latest = self.latest_version(asset)
            if latest is not None and latest != read_version:
                raise CommitConflict(
                    f"{asset}: another run committed version {latest} after this run read "
                    f"{'no table' if read_version is None else 'version ' + str(read_version)}; nothing of this "
                    "run was committed: run it again (it reuses what the other run computed)"
                ) from None
            raise TableError(f"{asset}: commit failed: {str(exc).splitlines()[0]}") from None
        return read_version + 1

    # -- history ---------------------------------------------------------------------------

    def history(self, asset: str, limit: int | None = None) -> list[dict]:
        """Commits newest first: version, timestamp (ms), operation, and this product's record."""
        if not self.exists(asset):
            return []
        out = []
        for entry in self.delta_table(asset).history(limit):
            info = entry.get(COMMIT_KEY)
            out.append(
                {
                    "version": int(entry["version"]),
                    "timestamp": int(entry["timestamp"]),
                    "operation": entry.get("operation"),
                    COMMIT_KEY: json.loads(info) if isinstance(info, str) else (info or {}),
                }
            )
        return out
