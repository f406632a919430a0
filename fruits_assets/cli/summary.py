"""Print what the last materializations produced, read from the Dagster instance (DAGSTER_HOME)."""

from __future__ import annotations

import sys

from dagster import AssetKey, DagsterInstance

from .. import settings
from ..names import ASSETS


def latest_metadata(instance: DagsterInstance, asset: str) -> dict:
    event = instance.get_latest_materialization_event(AssetKey(asset))
    if event is None or event.asset_materialization is None:
        return {}
    return {k: getattr(v, "value", v) for k, v in event.asset_materialization.metadata.items()}


RATE_MIN_IMAGES = 100  # below this, Spark's start-up dominates: a rate would mislead


def _why_random(model: dict) -> str:
    """Random weights make every number below a pipeline check only: say why they are random."""
    if model.get("pretrained"):
        return ""
    provenance = model.get("provenance") or {}
    notes = [n for n in provenance.get("notes", []) if "fell back" in n]
    reason = (
        notes[0].splitlines()[0][:160] if notes else f"FRUITS_WEIGHTS={provenance.get('weights_setting', 'random')}"
    )
    return (
        f"\n          RANDOM weights ({reason}): features, PCA and probe only check the pipeline;"
        " set FRUITS_WEIGHTS=imagenet (network) or a path to MobileNetV2 ImageNet weights (.h5)"
    )


def summary_lines(instance: DagsterInstance) -> list[str]:
    meta = {a: latest_metadata(instance, a) for a in ASSETS}
    missing = [a for a, m in meta.items() if not m]
    if missing:
        return [f"not materialized yet: {', '.join(missing)}"]
    pca, raw, model, feats = meta["pca_model"], meta["raw_images"], meta["feature_model"], meta["image_features"]
    probe = meta["feature_probe"]
    computed = int(feats.get("images_computed") or 0)
    rate = (
        f"{feats.get('images_per_second')} images/s including the start of Spark's Python workers"
        if computed >= RATE_MIN_IMAGES
        else "too few for a rate"
    )
    lines = [
        f"images    {raw.get('dagster/row_count')} in {raw.get('classes')} classes from {raw.get('images_root')}"
        f" ({raw.get('skipped')} other files skipped)",
        f"weights   {model.get('weights_source')} (pretrained={model.get('pretrained')}),"
        f" precision {model.get('precision') or 'fp32'}" + _why_random(model),
        f"features  {feats.get('dagster/row_count')} x {feats.get('feature_dim')}; this run featurized"
        f" {computed} images ({rate}),"
        f" reused {feats.get('images_reused')}; rejected {meta['image_rejects'].get('dagster/row_count')}",
        f"pca       k={pca.get('k')} explains {pca.get('explained_variance')} (target {pca.get('target')},"
        f" reached={pca.get('target_reached')})",
        f"probe     test accuracy {probe.get('accuracy')} (macro-F1 {probe.get('macro_f1')}, chance"
        f" {probe.get('majority_class_rate')}) over {probe.get('classes')} classes on {probe.get('features')}",
    ]
    lines += [f"output    {a:<15} {meta[a].get('dagster/uri')}" for a in ASSETS]
    return lines


def where_lines(instance: DagsterInstance) -> list[str]:
    """Which instance (and its storage) and which data root this summary reads: never a guess."""
    storage = type(instance.run_storage).__name__.replace("RunStorage", "") or "unknown"
    return [
        f"instance  DAGSTER_HOME={settings.dagster_home()} ({storage} storage)",
        f"data root FRUITS_DATA_ROOT={settings.data_root()}",
    ]


def main() -> int:
    # Explicit only: no .env is read (Dagster's CLIs load it over the environment: issue 22).
    if not settings.dagster_home():
        print(
            "error: DAGSTER_HOME is not set: export DAGSTER_HOME=$PWD/.dagster_home (the instance `make demo` "
            "writes; `make serve`'s is $PWD/.serve/dagster_home)",
            file=sys.stderr,
        )
        return 2
    with DagsterInstance.get() as instance:
        lines = summary_lines(instance)
        where = where_lines(instance)
    print("\n".join(["== fruits-assets summary ==", *where, *lines]))
    if lines and lines[0].startswith("not materialized"):
        return 1
    print(
        "look at it: `make ui`, then open http://127.0.0.1:3000 (Lineage: click an asset for its plots and "
        "tables); `make notebook` for notebooks/explore.ipynb; or `from fruits_assets.storage.catalog import load`"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
