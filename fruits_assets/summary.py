"""Print what the last materializations produced, read from the Dagster instance (DAGSTER_HOME)."""

from __future__ import annotations

import sys

from dagster import AssetKey, DagsterInstance

ASSETS = ("raw_images", "feature_model", "image_features", "image_rejects", "pca_model", "image_pca")


def latest_metadata(instance: DagsterInstance, asset: str) -> dict:
    event = instance.get_latest_materialization_event(AssetKey(asset))
    if event is None or event.asset_materialization is None:
        return {}
    return {k: getattr(v, "value", v) for k, v in event.asset_materialization.metadata.items()}


def summary_lines(instance: DagsterInstance) -> list[str]:
    meta = {a: latest_metadata(instance, a) for a in ASSETS}
    missing = [a for a, m in meta.items() if not m]
    if missing:
        return [f"not materialized yet: {', '.join(missing)}"]
    pca = meta["pca_model"]
    lines = [
        f"images    {meta['raw_images'].get('dagster/row_count')} in {meta['raw_images'].get('classes')} classes"
        f" from {meta['raw_images'].get('images_root')}",
        f"weights   {meta['feature_model'].get('weights_source')} (pretrained={meta['feature_model'].get('pretrained')})",
        f"features  {meta['image_features'].get('dagster/row_count')} x {meta['image_features'].get('feature_dim')}"
        f" at {meta['image_features'].get('images_per_second')} images/s;"
        f" rejected {meta['image_rejects'].get('dagster/row_count')}",
        f"pca       k={pca.get('k')} explains {pca.get('explained_variance')} (target {pca.get('target')},"
        f" reached={pca.get('target_reached')})",
    ]
    lines += [f"output    {a:<15} {meta[a].get('dagster/uri')}" for a in ASSETS]
    return lines


def main() -> int:
    with DagsterInstance.get() as instance:
        lines = summary_lines(instance)
    print("\n".join(["== fruits-assets summary =="] + lines))
    return 1 if lines and lines[0].startswith("not materialized") else 0


if __name__ == "__main__":
    sys.exit(main())
