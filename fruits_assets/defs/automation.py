"""When each asset refreshes by itself: the image store observed as a source asset, and the
declarative automation conditions that turn its changes into incremental runs.

- ``image_store`` is an observable source asset: its data version is a digest of the listing
  (every image's path and fingerprint). ``new_images_sensor`` lists the store every
  ``FRUITS_SENSOR_INTERVAL_S`` seconds and records an observation when the digest changed; it
  requests no run itself. A tick costs one listing, never an image read: the same shards as
  raw_images (images/listing.py), listed by a thread pool (``os.scandir`` + ``stat`` locally;
  ``ListObjectsV2`` per ``<split>/<label>/`` prefix, concurrently, on S3; or an S3 Inventory
  report), added up shard by shard into an order-free digest with no row kept.
- ``raw_images`` depends on ``image_store``; the data assets are ``eager``: an observation with
  a new data version requests, in one run, ``raw_images`` and everything it feeds up to
  ``image_pca``, and each step only computes what changed (incremental ``image_features``).
- ``feature_probe`` retrains a logistic regression: on its schedule (``FRUITS_PROBE_CRON``, when
  its inputs changed since the previous tick) or once ``FRUITS_PROBE_MIN_CHANGED`` of the feature
  rows changed since it last ran, never after every image. ``report`` follows the probe.
- ``automation_sensor`` evaluates those conditions every ``FRUITS_AUTOMATION_INTERVAL_S``
  seconds, in the code server (the row count condition is Python that reads the instance).

Both sensors start running by default under ``FRUITS_AUTOMATION=1`` (``make serve``) and stopped
otherwise (``make demo``, ``make ui``); the ``dagster asset materialize`` CLI ignores them.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping
from typing import Any, cast

from dagster import (
    AssetKey,
    AssetObservation,
    AssetRecordsFilter,
    AssetSelection,
    AutomationCondition,
    AutomationConditionSensorDefinition,
    AutomationContext,
    AutomationResult,
    DataVersion,
    DefaultSensorStatus,
    ObserveResult,
    SensorDefinition,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    define_asset_job,
    observable_source_asset,
    sensor,
)
from dagster._core.definitions.data_version import DATA_VERSION_TAG
from dagster_shared.utils.warnings import BetaWarning

from .. import settings
from ..images.s3_inventory import ManifestError
from ..names import (
    FEATURE_MODEL,
    FEATURE_PROBE,
    GROUP,
    IMAGE_FEATURES,
    IMAGE_PCA,
    IMAGE_REJECTS,
    IMAGE_STORE,
    PCA_MODEL,
    RAW_IMAGES,
    REPORT,
)
from .resources import ImageStore

refresh_job = define_asset_job(
    "refresh_all_assets",
    selection=AssetSelection.all(),
    description="raw_images and everything downstream (incremental), by hand from the launchpad",
)


def _status() -> DefaultSensorStatus:
    return DefaultSensorStatus.RUNNING if settings.automation() else DefaultSensorStatus.STOPPED


def _observe(context) -> ObserveResult:
    stats = context.resources.images.list_stats()
    return ObserveResult(
        data_version=DataVersion(stats.digest.hexdigest()),
        metadata={"images": stats.images, "uri": context.resources.images.uri},
    )


with warnings.catch_warnings():
    warnings.simplefilter("ignore", BetaWarning)  # observable source assets are beta in 1.13: chosen knowingly
    image_store = observable_source_asset(
        name=IMAGE_STORE,
        group_name=GROUP,
        required_resource_keys={"images"},
        description="The image folder or S3 prefix; its data version is a digest of the listing (path and "
        "fingerprint of every image), so it changes exactly when an image is added, changed or removed.",
    )(_observe)


def observe_images(context: SensorEvaluationContext, images: ImageStore):
    try:
        stats = images.list_stats()
    except (FileNotFoundError, NotADirectoryError, ManifestError) as exc:
        return SkipReason(str(exc))
    if stats.images == 0:
        return SkipReason(f"no images under {images.uri} yet")
    digest = stats.digest.hexdigest()
    if digest == context.cursor:
        return SkipReason(f"no change in {stats.images} images since the last observation")
    context.update_cursor(digest)
    # An empty cursor (a new sensor) records the current listing too: its data version equals the
    # last one when nothing changed, and automation only reacts to a new data version.
    return SensorResult(
        asset_events=[
            AssetObservation(
                asset_key=IMAGE_STORE,
                metadata={"images": stats.images, "uri": images.uri},
                tags={DATA_VERSION_TAG: digest},
            )
        ]
    )


def images_sensor() -> SensorDefinition:
    """``new_images_sensor``, with the settings of the moment (interval, running or stopped)."""
    return sensor(
        name="new_images_sensor",
        minimum_interval_seconds=settings.sensor_interval_s(),
        default_status=_status(),
        description="Lists the image store and records an observation of image_store when images were added, "
        "changed or removed; the automation conditions then request the runs (listing only, no image read)",
    )(observe_images)


# -- when enough feature rows changed since feature_probe ran


def changed_fraction(changes: Iterable[Mapping[str, Any]], rows: int) -> float:
    """Rows added, changed or removed over the table's rows, from image_features'
    materializations (``images_computed``, ``images_removed``) since the probe last ran."""
    changed = sum(int(m.get("images_computed") or 0) + int(m.get("images_removed") or 0) for m in changes)
    return changed / rows if rows else 0.0


def _metadata(record) -> dict:
    event = record.event_log_entry.asset_materialization
    return {k: getattr(v, "value", v) for k, v in (event.metadata if event else {}).items()}


class EnoughRowsChanged(AutomationCondition):
    """True when at least ``fraction`` of image_features' rows changed since the target (the probe)
    was last materialized; always true for a probe never materialized once features exist."""

    def __init__(self, fraction: float, source: str = IMAGE_FEATURES):
        self.fraction, self.source = fraction, source

    @property
    def name(self) -> str:
        return f"enough_rows_changed({self.fraction:g} of {self.source})"

    @property
    def requires_cursor(self) -> bool:
        return False

    def evaluate(self, context: AutomationContext) -> AutomationResult:
        instance = context.asset_graph_view.instance
        last = instance.fetch_materializations(context.key, limit=1).records
        after = last[0].storage_id if last else None
        records = instance.fetch_materializations(
            AssetRecordsFilter(asset_key=AssetKey(self.source), after_storage_id=after), limit=10_000
        ).records
        newest = instance.fetch_materializations(AssetKey(self.source), limit=1).records
        rows = int(_metadata(newest[0]).get("dagster/row_count") or 0) if newest else 0
        enough = bool(records) and changed_fraction([_metadata(r) for r in records], rows) >= self.fraction
        return AutomationResult(
            context=context, true_subset=context.candidate_subset if enough else context.get_empty_subset()
        )


def probe_condition(cron: str, fraction: float | None) -> AutomationCondition:
    scheduled = AutomationCondition.on_cron(cron)
    if fraction is None:
        return scheduled
    enough = cast(AutomationCondition, AutomationCondition.any_deps_updated() & EnoughRowsChanged(fraction))
    changed = enough.since_last_handled()
    return scheduled | (
        changed
        & ~AutomationCondition.any_deps_missing()
        & ~AutomationCondition.any_deps_in_progress()
        & ~AutomationCondition.in_progress()
    ).with_label(f"{fraction:g} of the feature rows changed")


def conditions() -> dict[str, AutomationCondition]:
    """Each asset's condition (settings read here, when the definitions are built)."""
    # eager() requests what *becomes* missing, never what was missing before its first tick: a fresh
    # instance would wait forever for a feature model. Missing and not failed last time is requested
    # (a failure waits for the next change upstream instead of retrying every tick).
    missing = (AutomationCondition.missing() & ~AutomationCondition.execution_failed()).with_label(
        "missing (last run did not fail)"
    )
    data = AutomationCondition.eager().replace("newly_missing", missing)
    after_probe = data.replace(
        "any_deps_updated", AutomationCondition.any_deps_updated().allow(AssetSelection.assets(FEATURE_PROBE))
    )
    return {
        RAW_IMAGES: data,
        # int8 calibrates on raw_images (a dependency for ordering): a new listing alone does not
        # rebuild the model; it is built when missing, and reused while its key holds.
        FEATURE_MODEL: data.replace(
            "any_deps_updated", AutomationCondition.any_deps_updated().ignore(AssetSelection.assets(RAW_IMAGES))
        ),
        IMAGE_FEATURES: data,
        IMAGE_REJECTS: data,
        PCA_MODEL: data,
        IMAGE_PCA: data,
        FEATURE_PROBE: probe_condition(settings.probe_cron(), settings.probe_min_changed()),
        REPORT: after_probe,
    }


def automation_sensor() -> AutomationConditionSensorDefinition:
    return AutomationConditionSensorDefinition(
        "automation_sensor",
        target=AssetSelection.all(),
        default_status=_status(),
        minimum_interval_seconds=settings.automation_interval_s(),
        # The row-count condition is Python reading the instance: evaluated in the code server.
        use_user_code_server=True,
        # Every asset has its own condition; this one is for the asset checks, which would otherwise
        # never be selected in an automation run: each check runs with its asset.
        default_condition=AutomationCondition.eager(),
        description="Evaluates the assets' automation conditions (docs/serve.md, 'Automation')",
    )
