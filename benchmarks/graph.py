"""Whole-graph benchmark: `materialize('*')` on N sample images in one process, every step timed.

    python benchmarks/graph.py --images 20000               # default settings (seeded random weights)
    python benchmarks/graph.py --images 20000 --max-k 128
    python benchmarks/graph.py --images 90483 --classes 131  # the Fruits-360 shape

Spark start-up and the first (cold) build of the feature model are reported apart: the measured
run reuses the stored model, as every run after the first does (README, "Performance"). The last
line is always:

    graph images=N k=K model_s=M featurize_s=F pca_fit_s=P project_s=R probe_s=Q total_s=T
          overhead_over_featurize=(T-Q-F)/F overhead_with_probe=(T-F)/F driver_peak_rss_mb=D

``overhead_over_featurize`` is the PCA and projection's cost (the figure issue 10 set), without the
feature probe, which is reported apart (``probe_s``, ``overhead_with_probe``).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from featurize import OUT, PeakRss, log, spark_config, weights_file  # noqa: E402

from fruits_assets import names  # noqa: E402

# The steps timed: one per data asset (image_rejects is an output of the image_features step).
STEPS = tuple(a for a in names.DATA_ASSETS if a != names.IMAGE_REJECTS)


def step_seconds(instance, run_id: str) -> dict[str, float]:
    from dagster import DagsterEventType

    starts, seconds = {}, {}
    for entry in instance.all_logs(run_id):
        event = entry.dagster_event
        if event is None or event.step_key is None:
            continue
        if event.event_type == DagsterEventType.STEP_START:
            starts[event.step_key] = entry.timestamp
        elif event.event_type == DagsterEventType.STEP_SUCCESS:
            seconds[event.step_key] = entry.timestamp - starts[event.step_key]
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=4000)
    parser.add_argument("--classes", type=int, default=131, help="sample classes (Fruits-360: 131)")
    parser.add_argument("--max-k", type=int, default=None, help="pca_model.max_k (default: the asset's default)")
    parser.add_argument("--weights", default=None, help="weights setting (default: the seeded random weights file)")
    parser.add_argument("--master", default="local[*]")
    parser.add_argument(
        "--probe-cap",
        type=int,
        default=None,
        help="feature_probe.max_train_rows_per_class (default: the asset's default)",
    )
    parser.add_argument(
        "--probe-compare",
        type=int,
        nargs="*",
        default=[],
        help="after the measured run, the probe again on the same vectors with each of these caps (0 = all rows)",
    )
    args = parser.parse_args()

    from dagster import AssetKey, DagsterInstance, materialize

    from fruits_assets.definitions import build_definitions, local_resources
    from fruits_assets.defs.resources import FruitsSpark
    from fruits_assets.images import sample_data

    images = OUT / "images" / f"n{args.images}-c{args.classes}"
    started = time.perf_counter()
    sample_data.generate(images, args.images, args.classes)
    log(f"{args.images} images in {args.classes} classes under {images} ({time.perf_counter() - started:.1f}s)")
    data = OUT / "graph-data"
    shutil.rmtree(data, ignore_errors=True)
    weights = args.weights or str(weights_file())
    conf = spark_config(args.master)

    started = time.perf_counter()
    FruitsSpark(spark_config=conf).spark_session  # noqa: B018 - started here, reported apart
    spark_start = time.perf_counter() - started

    from dagster import AssetsDefinition

    # The data assets (the image store is observed, not materialized): the report (a notebook over
    # the outputs) is presentation, not the pipeline.
    assets = [
        a
        for a in build_definitions("local").assets
        if isinstance(a, AssetsDefinition) and not any(k.path[-1] == "report" for k in a.keys)
    ]
    resources = local_resources(str(data), str(images), conf)
    run_config = {"ops": {"feature_model": {"config": {"weights": weights}}}}
    if args.max_k:
        run_config["ops"]["pca_model"] = {"config": {"max_k": args.max_k}}
    if args.probe_cap is not None:
        run_config["ops"]["feature_probe"] = {"config": {"max_train_rows_per_class": args.probe_cap}}
    instance = DagsterInstance.ephemeral()
    started = time.perf_counter()
    materialize(
        assets,
        resources=resources,
        run_config={"ops": {"feature_model": run_config["ops"]["feature_model"]}},
        instance=instance,
        selection=[AssetKey("feature_model")],
    )
    first_build = time.perf_counter() - started

    with PeakRss(field="VmRSS") as rss:  # during the measured run only (the warm-up built the model)
        started = time.perf_counter()
        result = materialize(assets, resources=resources, run_config=run_config, instance=instance)
        total = time.perf_counter() - started
    steps = step_seconds(instance, result.run_id)
    meta = {e.asset_key.path[-1]: e.materialization.metadata for e in result.get_asset_materialization_events()}
    k = meta["pca_model"]["k"].value
    disk_mb = int(subprocess.run(["du", "-sm", str(data)], capture_output=True, text=True).stdout.split()[0])
    featurize = steps["image_features"]
    log(
        f"spark_start_s={spark_start:.1f} model_first_build_s={first_build:.1f} "
        f"model_reused={meta['feature_model']['reused'].value}"
    )
    log(
        "steps: "
        + " ".join(f"{s}={steps.get(s, 0):.1f}s" for s in STEPS)
        + f" (pca moments {meta['pca_model']['moments_seconds'].value}s, "
        f"eig {meta['pca_model']['eig_seconds'].value}s)"
    )
    probe = meta["feature_probe"]
    log(
        f"probe: accuracy={probe['accuracy'].value} macro_f1={probe['macro_f1'].value} "
        f"chance={probe['majority_class_rate'].value} train_rows={probe['train_rows'].value} "
        f"eval_rows={probe['eval_rows'].value} iterations={probe['iterations'].value} "
        f"train_s={probe['train_seconds'].value} predict_s={probe['predict_seconds'].value}"
    )
    log(
        f"peak RSS MB: driver_python={rss.mb('driver_python')} jvm={rss.mb('jvm')} "
        f"python_worker={rss.mb('python_workers')}; disk used by outputs {disk_mb} MB"
    )
    for cap in args.probe_compare:
        cfg = {"ops": {"feature_probe": {"config": {"max_train_rows_per_class": cap}}}}
        started = time.perf_counter()
        again = materialize(
            assets, resources=resources, run_config=cfg, instance=instance, selection=[AssetKey("feature_probe")]
        )
        probe = next(e for e in again.get_asset_materialization_events()).materialization.metadata
        log(
            f"probe cap={cap}: accuracy={probe['accuracy'].value} macro_f1={probe['macro_f1'].value} "
            f"train_rows={probe['train_rows'].value} train_s={probe['train_seconds'].value} "
            f"step_s={time.perf_counter() - started:.1f}"
        )
    print(
        f"graph images={args.images} k={k} model_s={steps['feature_model']:.1f} featurize_s={featurize:.1f} "
        f"pca_fit_s={steps['pca_model']:.1f} project_s={steps['image_pca']:.1f} "
        f"probe_s={steps['feature_probe']:.1f} total_s={total:.1f} "
        f"overhead_over_featurize={(total - steps['feature_probe'] - featurize) / featurize:.2f} "
        f"overhead_with_probe={(total - featurize) / featurize:.2f} driver_peak_rss_mb={rss.mb('driver_python')}"
    )


if __name__ == "__main__":
    main()
