"""The incremental plan: which images need features, which feature rows and rejections carry
over from the published version (pure pandas, no I/O).

A feature row (or a rejection) is still valid when its image has the same path and fingerprint
(size + mtime locally, size + ETag on S3: see images/inventory.py) and it was computed by the same
featurizer (:func:`fruits_assets.analysis.keys.featurizer_key`). Every version is complete: carried
rows are copied into it (storage/parts.py), never referenced.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

REJECT_COLUMNS = ("path", "label", "split", "bytes", "error", "fingerprint")
TRANSIENT_REJECTS = ("unreadable:", "decoder error:")  # retried next run, not carried over


@dataclass(frozen=True)
class Previous:
    """What the published image_features / image_rejects versions hold."""

    uri: str  # the image_features version
    featurizer_key: str  # what computed its rows (model, decode code, Pillow)
    manifest: pd.DataFrame  # path, fingerprint of its feature rows
    rejects: pd.DataFrame  # REJECT_COLUMNS


@dataclass(frozen=True)
class Plan:
    compute: pd.DataFrame  # inventory rows to featurize now
    carry_paths: frozenset  # feature rows to carry over (by path)
    carried_rejects: pd.DataFrame  # rejections still valid (same bytes, same model): not retried
    removed: int  # previously featurized or rejected paths gone from the inventory
    reason: str


def plan(inventory: pd.DataFrame, previous: Previous | None, featurizer_key: str, full_refresh: bool) -> Plan:
    empty_rejects = pd.DataFrame({c: pd.Series(dtype="object") for c in REJECT_COLUMNS})
    if previous is None or full_refresh or previous.featurizer_key != featurizer_key:
        reason = (
            "first version"
            if previous is None
            else "full refresh requested"
            if full_refresh
            else "the model changed: every image is featurized again"
        )
        removed = (
            0
            if previous is None
            else int((~pd.concat([previous.manifest["path"], previous.rejects["path"]]).isin(inventory["path"])).sum())
        )
        return Plan(inventory, frozenset(), empty_rejects, removed, reason)
    key = inventory["path"] + "\0" + inventory["fingerprint"]
    featured = set(previous.manifest["path"] + "\0" + previous.manifest["fingerprint"])
    rejected = previous.rejects.assign(_key=previous.rejects["path"] + "\0" + previous.rejects["fingerprint"])
    # Only rejections that would come out the same: not transient reads or decoder crashes, and
    # never a path that has a feature row (image_rejects may come from another run).
    deterministic = ~rejected["error"].astype(str).str.startswith(TRANSIENT_REJECTS)
    still_rejected = rejected[
        rejected["_key"].isin(set(key)) & deterministic & ~rejected["path"].isin(set(previous.manifest["path"]))
    ].drop(columns="_key")
    carry = key.isin(featured)
    compute = inventory[~carry & ~key.isin(set(still_rejected["path"] + "\0" + still_rejected["fingerprint"]))]
    known = pd.concat([previous.manifest["path"], previous.rejects["path"]])
    removed = int((~known.isin(inventory["path"])).sum())
    return Plan(
        compute.reset_index(drop=True),
        frozenset(inventory.loc[carry, "path"]),
        still_rejected.reset_index(drop=True)[list(REJECT_COLUMNS)],
        removed,
        "incremental",
    )


def manifest(carry_paths: frozenset, computed_paths: pd.Series, fingerprints: pd.Series) -> pd.DataFrame:
    """(path, fingerprint) of every feature row of the new version: carried, then computed."""
    rows = pd.concat(
        [pd.DataFrame({"path": sorted(carry_paths)}), pd.DataFrame({"path": computed_paths})], ignore_index=True
    )
    rows["fingerprint"] = rows["path"].map(fingerprints)
    return rows


def rejects(carried: pd.DataFrame, new: pd.DataFrame, fingerprints: pd.Series) -> pd.DataFrame:
    """Every rejection of the new version (carried and new, with their fingerprints), by path."""
    new = new[["path", "label", "split", "bytes", "error"]].copy()
    new["fingerprint"] = new["path"].map(fingerprints)
    return (
        pd.concat([carried, new], ignore_index=True)[list(REJECT_COLUMNS)]
        .sort_values("path", ignore_index=True)
        .astype(
            {
                "path": "string",
                "label": "string",
                "split": "string",
                "bytes": "int64",
                "error": "string",
                "fingerprint": "string",
            }
        )
    )
