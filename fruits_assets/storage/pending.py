"""Commits asked for by a step that runs elsewhere (an EMR step), made by the Dagster process.

On EMR the whole step runs on the cluster. If it committed there, a step that the run no longer
waits for (cancelled in Dagster, still running on EMR) could still change what readers see. So
the cluster only writes its files and a request ``<table>/_pending/<run>-<step>.json``; the
Dagster process commits it once the EMR step succeeded (defs/emr_launcher.py). A request that is
never committed is garbage: upkeep removes it and its files once old enough.
"""

from __future__ import annotations

import base64
import json

import pyarrow as pa
import pyarrow.fs as pafs

from .fs import join
from .tables import FileEntry, Lake

PENDING_DIR = "_pending"


def _name(run_id: str, step_key: str, attempt: int) -> str:
    # Per attempt: a retried step never commits what a failed attempt asked for.
    return f"{run_id}-{step_key}-{attempt}.json"


def _schema_bytes(schema) -> str:
    arrow = schema if isinstance(schema, pa.Schema) else pa.schema(schema.to_arrow())
    return base64.b64encode(arrow.serialize().to_pybytes()).decode()


def request_commit(
    lake: Lake,
    run_id: str,
    step_key: str,
    asset: str,
    schema,
    adds: list[str],
    removes: list[FileEntry],
    read_version: int | None,
    info: dict,
    attempt: int = 0,
) -> None:
    request = {
        "asset": asset,
        "schema": _schema_bytes(schema),
        "adds": adds,
        "removes": [[f.path, f.size, f.rows] for f in removes],
        "read_version": read_version,
        "info": info,
    }
    uri = join(lake.table_uri(asset), PENDING_DIR, _name(run_id, step_key, attempt))
    fs, path = lake.fs(uri)
    if not uri.startswith("s3"):
        fs.create_dir(path.rsplit("/", 1)[0], recursive=True)
    with fs.open_output_stream(path) as out:  # one PUT: atomic on S3; read only after the step ended
        out.write(json.dumps(request).encode())


def commit_pending(
    lake: Lake, assets: tuple[str, ...], run_id: str, step_key: str, out: dict | None = None, attempt: int = 0
) -> dict[str, tuple[int, bool]]:
    """Commit every request the step's attempt left, filling and returning {asset: (version,
    committed)}. A conflict raises :class:`~fruits_assets.storage.tables.CommitConflict`: what
    was committed before it stays in ``out``, nothing more is committed."""
    out = {} if out is None else out
    for asset in assets:
        uri = join(lake.table_uri(asset), PENDING_DIR, _name(run_id, step_key, attempt))
        fs, path = lake.fs(uri)
        if fs.get_file_info(path).type != pafs.FileType.File:
            continue
        with fs.open_input_stream(path) as fh:
            request = json.loads(fh.read())
        schema = pa.ipc.read_schema(pa.py_buffer(base64.b64decode(request["schema"])))
        removes = [FileEntry(p, int(s), r) for p, s, r in request["removes"]]
        read = request["read_version"]
        version = lake.commit(asset, schema, request["adds"], removes, read, request["info"])
        fs.delete_file(path)
        out[asset] = (version, version != read)
    return out
