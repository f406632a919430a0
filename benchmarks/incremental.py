"""Incremental benchmark: the whole graph on N sample images from nothing, then after +1 % new
images, then with no change; one process, Spark start-up excluded.

    python benchmarks/incremental.py --images 4000
    python benchmarks/incremental.py --images 4000 --automation

With --automation, the +1 % run materializes what the automation conditions select (as the daemon
would, docs/serve.md): new_images_sensor observes the listing, the conditions are evaluated, and the
selected assets are materialized; the probe is not among them after a 1 % change. Its last line:

    automation images=N full_s=A plus1pct_auto_s=B plus1pct_auto_over_full=B/A selected=a,b,...

Also reported apart (not in the last line): a `full_refresh` run (every image featurized again
with the model already built), to compare against a full run that does not pay the Keras build,
and the ratios without feature_probe's seconds (it is retrained whenever image_pca changes).
The last line is always:

    incremental images=N full_s=A plus1pct_s=B nochange_s=C plus1pct_over_full=B/A nochange_over_full=C/A
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from featurize import OUT, log, spark_config, weights_file  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=4000)
    parser.add_argument("--classes", type=int, default=131)
    parser.add_argument("--master", default="local[*]")
    parser.add_argument("--automation", action="store_true", help="+1 %% run of what automation selects")
    args = parser.parse_args()

    from dagster import AssetKey, AssetsDefinition, DagsterInstance, materialize

    from fruits_assets.definitions import build_definitions, local_resources
    from fruits_assets.defs.resources import FruitsSpark
    from fruits_assets.images import sample_data

    images, data = OUT / "incremental-images", OUT / "incremental-data"
    shutil.rmtree(images, ignore_errors=True)
    shutil.rmtree(data, ignore_errors=True)
    sample_data.generate(images, args.images, args.classes)
    conf = spark_config(args.master)
    started = time.perf_counter()
    FruitsSpark(spark_config=conf).spark_session  # noqa: B018 - reported apart
    log(f"spark_start_s={time.perf_counter() - started:.1f}")
    # The data assets: the report (a notebook over the outputs) is presentation, not the pipeline.
    # The computed assets: the image store (an observable source) and the report are left out.
    assets = [
        a
        for a in build_definitions("local").assets
        if isinstance(a, AssetsDefinition) and not any(k.path[-1] == "report" for k in a.keys)
    ]
    resources = local_resources(str(data), str(images), conf)
    weights = {"feature_model": {"config": {"weights": str(weights_file())}}}
    instance = DagsterInstance.ephemeral()

    probe_s: dict[str, float] = {}

    def run(label: str, extra: dict | None = None, selection: list | None = None) -> float:
        started = time.perf_counter()
        ops = {**weights, **(extra or {})}
        if selection is not None:  # config only for the ops that run (Dagster refuses the others)
            chosen = {AssetKey.from_coercible(k).path[-1] for k in selection}
            ops = {op: cfg for op, cfg in ops.items() if op in chosen}
        result = materialize(
            assets, resources=resources, instance=instance, run_config={"ops": ops}, selection=selection
        )
        seconds = time.perf_counter() - started
        meta = {e.asset_key.path[-1]: e.materialization.metadata for e in result.get_asset_materialization_events()}
        f = meta["image_features"]
        reused = {a: m["reused"].value for a, m in meta.items() if "reused" in m}
        log(
            f"{label}: {seconds:.1f}s computed={f['images_computed'].value} reused={f['images_reused'].value} "
            f"removed={f['images_removed'].value} reused_by_asset={reused} "
            f"probe_s={meta['feature_probe']['probe_seconds'].value if 'feature_probe' in meta else None}"
        )
        if "feature_probe" in meta:
            probe_s[label] = meta["feature_probe"]["probe_seconds"].value
        return seconds

    if args.automation:
        automation(args, assets, resources, images, instance, run)
        return
    full = run("full (first run: Keras build included)")
    sample_data.generate(images, args.images + args.images // 100, args.classes)  # +1 % new files
    plus = run("+1 %")
    same = run("no change")
    refresh = run("full_refresh (model reused)", {"image_features": {"config": {"full_refresh": True}}})
    # The graph as issue 11 measured it had no feature_probe: its share, said apart.
    p_full, p_plus = probe_s["full (first run: Keras build included)"], probe_s["+1 %"]
    log(
        f"without feature_probe's time: plus1pct_over_full={(plus - p_plus) / (full - p_full):.3f} "
        f"(the probe: {p_full:.1f}s in the full run, {p_plus:.1f}s in the +1 % run)"
    )
    log(
        f"against the full_refresh run: plus1pct_over_full_refresh={plus / refresh:.3f} "
        f"nochange_over_full_refresh={same / refresh:.3f}"
    )
    print(
        f"incremental images={args.images} full_s={full:.1f} plus1pct_s={plus:.1f} nochange_s={same:.1f} "
        f"plus1pct_over_full={plus / full:.3f} nochange_over_full={same / full:.3f}"
    )


def automation(args, assets, resources, images: Path, instance, run) -> None:
    """Full run, then +1 % images and a run of what the automation conditions request (the data
    assets the daemon would launch: `report`, a notebook over the outputs, is left out as above)."""
    from dagster import AssetKey, AssetSelection, Definitions, build_sensor_context, evaluate_automation_conditions

    from fruits_assets.defs.automation import image_store, images_sensor
    from fruits_assets.defs.resources import ImageStore
    from fruits_assets.images import sample_data
    from fruits_assets.names import DATA_ASSETS

    defs = Definitions(assets=[image_store, *assets], resources=resources)
    data = AssetSelection.assets(*DATA_ASSETS)
    store = ImageStore(uri=str(images))
    state: dict = {"sensor": None, "automation": None}

    def observe() -> None:  # one tick of new_images_sensor: an observation when the listing changed
        context = build_sensor_context(cursor=state["sensor"], instance=instance, resources={"images": store})
        result = images_sensor()(context)
        state["sensor"] = context.cursor
        for event in getattr(result, "asset_events", []):
            instance.report_runless_asset_event(event)

    def tick() -> list[AssetKey]:
        result = evaluate_automation_conditions(defs, instance, asset_selection=data, cursor=state["automation"])
        state["automation"] = result.cursor
        return [AssetKey(a) for a in DATA_ASSETS if result.get_requested_partitions(AssetKey(a))]

    full = run("full (first run: Keras build included)")
    observe()
    tick()  # the first evaluation only records the state
    assert tick() == [], "automation requested a run with nothing changed"
    sample_data.generate(images, args.images + args.images // 100, args.classes)  # +1 % new files
    observe()
    selected = tick()
    log(f"automation selected after +1 %: {', '.join(k.path[-1] for k in selected)}")
    assert AssetKey("feature_probe") not in selected, "the probe was requested after a 1 % change"
    plus = run("+1 % (automation)", selection=selected)
    print(
        f"automation images={args.images} full_s={full:.1f} plus1pct_auto_s={plus:.1f} "
        f"plus1pct_auto_over_full={plus / full:.3f} selected={','.join(k.path[-1] for k in selected)}"
    )


if __name__ == "__main__":
    main()
