"""Residue of dead runs: unpublished versions, staged parts, run ledgers; and run records that
still say STARTED although their process is gone.

Runs at the start of every run (the IO manager's setup) and as ``fruits-assets gc``. It only
touches runs known to be over: finished in the Dagster instance, owned by a process of this
machine that no longer exists, or older than ``max_age_s`` when neither can be told (e.g. an EMR
step's own process, or a run recorded by another instance).
"""

from __future__ import annotations

import os
import re
import socket
import time
from dataclasses import dataclass, field

import pyarrow.fs as pafs

from .fs import filesystem
from .ledger import RunLedger, run_ids
from .versions import VersionedStore

DEFAULT_MAX_AGE_S = 24 * 3600
_STAGED = re.compile(r"^.+-([0-9a-f]{8}(?:-[0-9a-f]{4}){3}-[0-9a-f]{12})-[0-9a-f]{6}$")  # <output>-<run uuid>-<nonce>
_FINISHED = {"SUCCESS", "FAILURE", "CANCELED"}
_ACTIVE = {"STARTED", "STARTING", "CANCELING"}


@dataclass
class Collected:
    runs: list[str] = field(default_factory=list)  # dead runs whose residue was removed
    versions: list[str] = field(default_factory=list)  # unpublished version folders deleted
    staged: list[str] = field(default_factory=list)  # staging folders deleted
    marked_failed: list[str] = field(default_factory=list)  # STARTED runs whose process had died

    def summary(self) -> str:
        return (
            f"{len(self.runs)} dead runs cleaned: {len(self.versions)} unpublished versions, "
            f"{len(self.staged)} staging folders removed; {len(self.marked_failed)} runs marked failed"
        )


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _owners_all_dead_here(ledger: RunLedger) -> bool | None:
    """True when every process that worked for the run ran on this machine and is gone; None
    when that cannot be told (no owner recorded, or one on another machine)."""
    owners = [e.record for e in ledger.entries() if e.kind == "owner"]
    host = socket.gethostname()
    if not owners or any(o.get("host") != host for o in owners):
        return None
    return not any(_pid_alive(int(o["pid"])) for o in owners)


def _age_s(fs, path: str) -> float:
    info = fs.get_file_info(path)
    mtime = info.mtime.timestamp() if info.mtime is not None else time.time()
    return time.time() - mtime


def _is_dead(
    run_id: str, ledger: RunLedger | None, instance, age_s: float, max_age_s: float, collected: Collected
) -> bool:
    run = instance.get_run_by_id(run_id) if instance is not None else None
    if run is not None:
        status = run.status.value
        if status in _FINISHED:
            return True
        if status in _ACTIVE and ledger is not None and _owners_all_dead_here(ledger):
            instance.report_run_failed(run, "the process running it is gone (killed?); found by the next run")
            collected.marked_failed.append(run_id)
            return True
        return False
    if ledger is not None:
        dead_here = _owners_all_dead_here(ledger)
        if dead_here is not None:
            return dead_here
    return age_s > max_age_s


def collect(
    store: VersionedStore,
    staging_uri: str | None = None,
    instance=None,
    current_run_id: str | None = None,
    max_age_s: float = DEFAULT_MAX_AGE_S,
    endpoint_url: str | None = None,
    region: str | None = None,
) -> Collected:
    """Remove what dead runs left behind; never a published version, never a live run's files."""
    collected = Collected()
    fs, _ = store.fs(store.root)
    for run_id in run_ids(store):
        if run_id == current_run_id:
            continue
        ledger = RunLedger(store, run_id)
        _, ledger_path = store.fs(ledger.uri)
        if not _is_dead(run_id, ledger, instance, _age_s(fs, ledger_path), max_age_s, collected):
            continue
        for entry in ledger.entries():
            if entry.kind != "out":
                continue
            version = entry.record["version"]
            if not store.is_published_version(entry.asset, version):
                store.delete_version(entry.asset, version)
                collected.versions.append(f"{entry.asset}/v={version}")
        ledger.delete()
        collected.runs.append(run_id)
    if staging_uri:
        collected.staged += _collect_staging(
            staging_uri, instance, current_run_id, max_age_s, endpoint_url, region, collected
        )
    return collected


def _collect_staging(
    staging_uri, instance, current_run_id, max_age_s, endpoint_url, region, collected: Collected
) -> list[str]:
    """Staging folders are named ``<output>-<run_id>-<nonce>`` (StagingArea.new_dir)."""
    fs, base = filesystem(staging_uri, endpoint_url, region)
    removed = []
    for info in fs.get_file_info(pafs.FileSelector(base, allow_not_found=True)):
        if info.type != pafs.FileType.Directory:
            continue
        match = _STAGED.match(info.base_name)
        run_id = match.group(1) if match else None
        if not run_id or run_id == current_run_id:  # not a folder StagingArea.new_dir named
            continue
        if run_id in collected.runs or _is_dead(run_id, None, instance, _age_s(fs, info.path), max_age_s, collected):
            fs.delete_dir(info.path)
            removed.append(info.base_name)
    return removed
