"""The automation conditions of the real asset graph, tick by tick, on an in-memory instance:
materializations are reported as events (no step runs), so this is pure logic (fast tier).

What it pins down: a new listing requests the data assets in one tick and never the probe after
a small change; the probe retrains once enough rows changed, or on its cron tick; the report
follows the probe; an unchanged listing requests nothing."""

from __future__ import annotations

import datetime

import pytest
from dagster import AssetKey, AssetMaterialization, AssetObservation, DagsterInstance, evaluate_automation_conditions
from dagster._core.definitions.data_version import DATA_VERSION_TAG

from fruits_assets import names
from fruits_assets.definitions import build_definitions
from fruits_assets.defs.automation import changed_fraction

pytestmark = pytest.mark.fast

DATA = {
    names.RAW_IMAGES,
    names.IMAGE_FEATURES,
    names.IMAGE_REJECTS,
    names.PCA_MODEL,
    names.IMAGE_PCA,
}


class Ticks:
    def __init__(self, monkeypatch, tmp_path, **env):
        monkeypatch.setenv("FRUITS_DATA_ROOT", str(tmp_path / "data"))
        monkeypatch.delenv("FRUITS_AUTOMATION", raising=False)
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        self.defs = build_definitions("local")
        self.instance = DagsterInstance.ephemeral()
        self.cursor = None
        self.now = datetime.datetime(2026, 12, 4, 10, 0, tzinfo=datetime.timezone.utc)

    def tick(self, minutes: int = 1) -> set[str]:
        self.now += datetime.timedelta(minutes=minutes)
        result = evaluate_automation_conditions(self.defs, self.instance, cursor=self.cursor, evaluation_time=self.now)
        self.cursor = result.cursor
        return {asset for asset in names.ASSETS if result.get_requested_partitions(AssetKey(asset))}

    def observe(self, digest: str) -> None:
        self.instance.report_runless_asset_event(
            AssetObservation(asset_key=names.IMAGE_STORE, tags={DATA_VERSION_TAG: digest})
        )

    def materialize(self, assets, **metadata) -> None:
        for asset in sorted(assets):
            meta = metadata if asset == names.IMAGE_FEATURES else {}
            self.instance.report_runless_asset_event(AssetMaterialization(AssetKey(asset), metadata=meta))


def features(computed: int, rows: int, removed: int = 0) -> dict:
    return {"images_computed": computed, "images_removed": removed, "dagster/row_count": rows}


def test_new_images_request_the_data_assets_and_enough_change_the_probe(monkeypatch, tmp_path):
    t = Ticks(monkeypatch, tmp_path)
    # A fresh instance: nothing until the image store is observed (the feature model follows
    # raw_images: int8 calibrates on it), then every data asset and the model in one tick.
    assert t.tick() == set()
    assert t.tick() == set()
    t.observe("listing-1")
    assert t.tick() == DATA | {names.FEATURE_MODEL}  # one tick, one run; the probe waits for row counts
    t.materialize(DATA | {names.FEATURE_MODEL}, **features(1000, 1000))
    # Never trained: every row is new. The report follows the probe, in the same run.
    assert t.tick() == {names.FEATURE_PROBE, names.REPORT}
    t.materialize({names.FEATURE_PROBE, names.REPORT})
    assert t.tick() == set()

    t.observe("listing-1")  # the same listing observed again (a new sensor's first tick)
    assert t.tick() == set()

    t.observe("listing-2")  # +1 %
    assert t.tick() == DATA
    t.materialize(DATA, **features(10, 1010))
    assert t.tick() == set()  # 1 % changed: the probe is not retrained after every image

    t.observe("listing-3")  # more images: 5 % changed since the probe ran
    assert t.tick() == DATA
    t.materialize(DATA, **features(45, 1055))  # 55 of 1055 rows
    assert t.tick() == {names.FEATURE_PROBE, names.REPORT}


def test_the_probe_retrains_on_its_cron_tick_when_its_inputs_changed(monkeypatch, tmp_path):
    t = Ticks(monkeypatch, tmp_path, FRUITS_PROBE_MIN_CHANGED="off", FRUITS_PROBE_CRON="0 12 * * *")
    t.tick()
    t.observe("listing-1")
    assert t.tick() == DATA | {names.FEATURE_MODEL}
    t.materialize(DATA | {names.FEATURE_MODEL}, **features(1000, 1000))
    assert t.tick() == set()  # "off": no retraining on row counts, even never trained
    assert t.tick(minutes=60 * 3) == set()  # 12:00 UTC passed; nothing changed since
    t.observe("listing-2")
    # The first change after the cron tick: the data assets and the probe, in one run.
    assert t.tick() == DATA | {names.FEATURE_PROBE, names.REPORT}
    t.materialize(DATA | {names.FEATURE_PROBE, names.REPORT}, **features(10, 1010))
    assert t.tick() == set()
    t.observe("listing-3")
    assert t.tick() == DATA  # once per cron period


def test_changed_fraction():
    assert changed_fraction([{"images_computed": 3, "images_removed": 2}, {"images_computed": 5}], 100) == 0.1
    assert changed_fraction([], 0) == 0.0


def test_automation_is_off_unless_asked(monkeypatch):
    """Off under `make demo`/`make ui` (FRUITS_AUTOMATION unset), on under `make serve` (=1)."""
    from dagster import DefaultSensorStatus

    from fruits_assets.defs.automation import automation_sensor, images_sensor

    monkeypatch.delenv("FRUITS_AUTOMATION", raising=False)
    assert images_sensor().default_status == automation_sensor().default_status == DefaultSensorStatus.STOPPED
    monkeypatch.setenv("FRUITS_AUTOMATION", "1")
    assert images_sensor().default_status == automation_sensor().default_status == DefaultSensorStatus.RUNNING
