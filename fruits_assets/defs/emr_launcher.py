"""The EMR step launcher whose Dagster process, not the cluster, commits the step's outputs.

dagster-aws's launcher runs the whole step on the cluster and relays its events. Here the step
on the cluster only writes its files and a commit request (storage/pending.py); once the EMR
step has succeeded, this process commits the requests, then relays the step's materializations
with the committed versions in their metadata. A step that the run stopped waiting for
(cancelled, or its Dagster process killed) commits nothing, whatever the cluster does after.
"""

from __future__ import annotations

import time
from typing import Any

from dagster import DagsterEventType
from dagster._core.errors import raise_execution_interrupts
from dagster_aws.emr.pyspark_step_launcher import EmrPySparkStepLauncher

from ..errors import expected_error
from ..names import ASSETS
from ..storage.pending import commit_pending
from ..storage.tables import Lake, TableError
from .console import ExpectedFailure

_HELD = (DagsterEventType.ASSET_MATERIALIZATION, DagsterEventType.STEP_SUCCESS)


def _with_version(entry, versions: dict[str, tuple[int, bool]]):
    """The relayed materialization with its committed version (the cluster only knew it asked)."""
    event = entry.dagster_event
    if event is None or event.event_type != DagsterEventType.ASSET_MATERIALIZATION:
        return entry
    data = event.event_specific_data
    materialization = data.materialization
    asset = materialization.asset_key.path[-1]
    if asset not in versions:
        return entry
    version, committed = versions[asset]
    metadata = dict(materialization.metadata)
    metadata["table_version"] = version
    metadata["committed"] = f"version {version}" if committed else f"unchanged: version {version} still holds"
    data = data._replace(materialization=materialization.with_metadata(metadata))
    return entry._replace(dagster_event=event._replace(event_specific_data=data))


class CommittingEmrStepLauncher(EmrPySparkStepLauncher):
    def __init__(self, lake: Lake, **kwargs: Any):
        super().__init__(**kwargs)
        self.lake = lake

    def wait_for_completion(self, step_context, s3, run_id, step_key, emr_step_id, check_interval=15):
        # dagster-aws's loop, holding back the materializations and the step's success until the
        # commits are made here.
        done = False
        all_events: list = []
        held: list = []
        while not done:
            with raise_execution_interrupts():
                time.sleep(check_interval)  # AWS rate-limits polling
                done = self.emr_job_runner.is_emr_step_complete(step_context.log, self.cluster_id, emr_step_id)
                all_events_new = self.read_events(s3, run_id, step_key)
            if len(all_events_new) <= len(all_events):  # as dagster-aws: never relay an event twice
                continue
            for event in all_events_new[len(all_events) :]:
                if event.is_dagster_event and event.dagster_event.event_type in _HELD:
                    held.append(event)
                    continue
                step_context.instance.handle_new_event(event)
                if event.is_dagster_event:
                    yield event.dagster_event
            all_events = all_events_new
        succeeded = any(e.dagster_event.event_type == DagsterEventType.STEP_SUCCESS for e in held)
        if not succeeded:
            return  # the step failed on the cluster: its failure was relayed, nothing is committed
        versions: dict[str, tuple[int, bool]] = {}
        failed: TableError | None = None
        try:
            commit_pending(self.lake, tuple(ASSETS), run_id, step_key, versions, step_context.previous_attempt_count)
        except TableError as exc:
            failed = exc
        for event in held:
            if failed is not None and not self._committed(event, versions):
                continue  # its commit did not happen: neither its materialization nor the step's success
            entry = _with_version(event, versions)
            step_context.instance.handle_new_event(entry)
            yield entry.dagster_event
        if failed is not None:
            raise expected_error(ExpectedFailure(str(failed))) from None

    @staticmethod
    def _committed(entry, versions: dict) -> bool:
        event = entry.dagster_event
        if event.event_type != DagsterEventType.ASSET_MATERIALIZATION:
            return False
        return event.event_specific_data.materialization.asset_key.path[-1] in versions
