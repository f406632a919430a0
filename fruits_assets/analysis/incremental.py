"""Incremental featurization: which images need features, which feature rows and rejects carry
over from the published version, and how a new complete version is assembled from both.

A feature row (or a rejection) is still valid when its image has the same path and fingerprint
(size + mtime locally, size + ETag on S3: see inventory.py) and it was computed by the same model
(``model_sha256``). Every version is complete: carried rows are copied into it (whole parquet
parts hard-linked or server-side copied when all their rows carry over), never referenced.

Two small files ride in each image_features version (names starting with "_", which Spark and
pyarrow skip when reading the table): ``_images.parquet`` (path, fingerprint of every feature row)
and ``_featurized.json`` (model, content key, counts).
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from dataclasses import dataclass

import pandas as pd
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from .featurize import is_data_part
from .storage import filesystem, is_s3, join

MANIFEST = "_images.parquet"
FEATURIZED = "_featurized.json"
PROJECTED = "_projected.json"  # in image_pca versions: the fit_key of the model that projected them
PROBED = "_probe.json"  # in feature_probe versions: the probe's numbers and the key of its inputs
REJECT_COLUMNS = ("path", "label", "split", "bytes", "error", "fingerprint")
TRANSIENT_REJECTS = ("unreadable:", "decoder error:")  # retried next run, not carried over


@dataclass(frozen=True)
class Previous:
    """What the published image_features / image_rejects versions hold."""

    uri: str                   # the image_features version
    model_sha256: str
    manifest: pd.DataFrame     # path, fingerprint of its feature rows
    rejects: pd.DataFrame      # REJECT_COLUMNS


@dataclass(frozen=True)
class Plan:
    compute: pd.DataFrame          # inventory rows to featurize now
    carry_paths: frozenset         # feature rows to carry over (by path)
    carried_rejects: pd.DataFrame  # rejections still valid (same bytes, same model): not retried
    removed: int                   # previously featurized or rejected paths gone from the inventory
    reason: str


def plan(inventory: pd.DataFrame, previous: Previous | None, model_sha256: str, full_refresh: bool) -> Plan:
    empty_rejects = pd.DataFrame({c: pd.Series(dtype="object") for c in REJECT_COLUMNS})
    if previous is None or full_refresh or previous.model_sha256 != model_sha256:
        reason = ("first version" if previous is None else "full refresh requested" if full_refresh
                  else "the model changed: every image is featurized again")
        removed = 0 if previous is None else int(
            (~pd.concat([previous.manifest["path"], previous.rejects["path"]]).isin(inventory["path"])).sum())
        return Plan(inventory, frozenset(), empty_rejects, removed, reason)
    key = inventory["path"] + "\0" + inventory["fingerprint"]
    featured = set(previous.manifest["path"] + "\0" + previous.manifest["fingerprint"])
    rejected = previous.rejects.assign(_key=previous.rejects["path"] + "\0" + previous.rejects["fingerprint"])
    # Only rejections that would come out the same: not transient reads or decoder crashes, and
    # never a path that has a feature row (image_rejects may come from another run).
    deterministic = ~rejected["error"].astype(str).str.startswith(TRANSIENT_REJECTS)
    still_rejected = rejected[rejected["_key"].isin(set(key)) & deterministic
                              & ~rejected["path"].isin(set(previous.manifest["path"]))].drop(columns="_key")
    carry = key.isin(featured)
    compute = inventory[~carry & ~key.isin(set(still_rejected["path"] + "\0" + still_rejected["fingerprint"]))]
    known = pd.concat([previous.manifest["path"], previous.rejects["path"]])
    removed = int((~known.isin(inventory["path"])).sum())
    return Plan(compute.reset_index(drop=True), frozenset(inventory.loc[carry, "path"]),
                still_rejected.reset_index(drop=True)[list(REJECT_COLUMNS)], removed, "incremental")


def featurizer_key(model_sha256: str, code_version: str) -> str:
    """The model plus what prepares its input outside it (decode/resize code, Pillow's version)."""
    import PIL

    return hashlib.sha256(f"{model_sha256}|{code_version}|Pillow {PIL.__version__}".encode()).hexdigest()


def content_key(model_sha256: str, manifest: pd.DataFrame) -> str:
    """Same key = same feature rows: the model and every (path, fingerprint), order-free."""
    digest = hashlib.sha256(model_sha256.encode())
    for path, fingerprint in sorted(zip(manifest["path"], manifest["fingerprint"])):
        digest.update(f"\n{path}\0{fingerprint}".encode())
    return digest.hexdigest()


def load_previous(features_uri: str | None, rejects: pd.DataFrame | None, endpoint_url=None,
                  region=None) -> Previous | None:
    if features_uri is None:
        return None
    fs, path = filesystem(features_uri, endpoint_url, region)
    try:
        with fs.open_input_stream(f"{path}/{FEATURIZED}") as fh:
            info = json.loads(fh.read())
        manifest = pq.read_table(f"{path}/{MANIFEST}", filesystem=fs).to_pandas()
    except (FileNotFoundError, OSError):
        return None  # a version written before incremental runs: featurize everything once
    if rejects is None or "fingerprint" not in rejects.columns:
        rejects = pd.DataFrame({c: pd.Series(dtype="object") for c in REJECT_COLUMNS})
    return Previous(features_uri, info["model_sha256"], manifest, rejects[list(REJECT_COLUMNS)])


def _copy(fs, src: str, dst: str) -> None:
    if isinstance(fs, pafs.LocalFileSystem):
        try:
            os.link(src, dst)  # versions are immutable once published: sharing the inode is safe
            return
        except OSError:
            pass
    fs.copy_file(src, dst)


def carry_parts(previous_uri: str, keep: frozenset | None, staged_uri: str, endpoint_url=None, region=None) -> int:
    """Copy the previous version's feature rows whose path is in ``keep`` into ``staged_uri``:
    whole parts when all their rows are kept, filtered rewrites otherwise (one part in memory at a
    time); ``keep=None`` carries every row. Returns the rows carried. Vectors are copied bit for bit."""
    if keep is not None and not keep:
        return 0
    fs, src = filesystem(previous_uri, endpoint_url, region)
    _, dst = filesystem(staged_uri, endpoint_url, region)
    if not is_s3(staged_uri):
        fs.create_dir(dst, recursive=True)
    nonce = uuid.uuid4().hex[:6]
    carried = 0
    parts = sorted(i.path for i in fs.get_file_info(pafs.FileSelector(src))
                   if i.type == pafs.FileType.File and is_data_part(i.base_name))
    for n, part in enumerate(parts):
        if keep is None:
            with fs.open_input_file(part) as fh:
                kept = total = pq.ParquetFile(fh).metadata.num_rows
        else:
            paths = pq.read_table(part, columns=["path"], filesystem=fs).column("path").to_pylist()
            mask = [p in keep for p in paths]
            kept, total = sum(mask), len(paths)
        if kept == 0:
            continue
        target = f"{dst}/part-c{nonce}-{n:05d}.parquet"
        if kept == total:
            _copy(fs, part, target)
        else:
            table = pq.read_table(part, filesystem=fs).filter(pa.array(mask))
            pq.write_table(table, target, filesystem=fs, compression="snappy",
                           use_dictionary=["path", "label", "split"])
        carried += kept
    return carried


def write_info(staged_uri: str, name: str, info: dict, endpoint_url=None, region=None) -> None:
    fs, dst = filesystem(staged_uri, endpoint_url, region)
    if not is_s3(staged_uri):
        fs.create_dir(dst, recursive=True)
    with fs.open_output_stream(f"{dst}/{name}") as out:
        out.write(json.dumps(info, indent=2).encode())


def write_table(staged_uri: str, name: str, table: pa.Table, endpoint_url=None, region=None) -> None:
    """A parquet file the driver writes into a staged version (sidecars, the probe's rows)."""
    fs, dst = filesystem(staged_uri, endpoint_url, region)
    if not is_s3(staged_uri):
        fs.create_dir(dst, recursive=True)
    pq.write_table(table, f"{dst}/{name}", filesystem=fs)


def write_sidecars(staged_uri: str, manifest: pd.DataFrame, info: dict, endpoint_url=None, region=None) -> None:
    write_table(staged_uri, MANIFEST,
                pa.Table.from_pandas(manifest[["path", "fingerprint"]].astype(str), preserve_index=False),
                endpoint_url, region)
    write_info(staged_uri, FEATURIZED, info, endpoint_url, region)


def fit_key(features_info: dict | None, config: dict) -> str | None:
    """Same key = same PCA: same feature rows (content key) and same PCA settings."""
    if not features_info or "content_key" not in features_info:
        return None
    doc = json.dumps({"features": features_info["content_key"], "config": config}, sort_keys=True)
    return hashlib.sha256(doc.encode()).hexdigest()


def probe_key(features: str, source_info: dict | None, config: dict, code_version: str) -> str | None:
    """Same key = same probe: the same vectors (image_pca's fit and feature keys, or
    image_features' content key), the same probe settings and code."""
    if not source_info:
        return None
    material = {k: source_info.get(k) for k in ("fit_key", "features_key", "content_key")}
    if not any(material.values()):
        return None
    doc = json.dumps({"features": features, "source": material, "config": config, "code": code_version},
                     sort_keys=True)
    return hashlib.sha256(doc.encode()).hexdigest()


def read_info(version_uri: str, name: str, endpoint_url=None, region=None) -> dict | None:
    fs, path = filesystem(join(version_uri, name), endpoint_url, region)
    try:
        with fs.open_input_stream(path) as fh:
            return json.loads(fh.read())
    except (FileNotFoundError, OSError):
        return None
