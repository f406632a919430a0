"""raw_images: the inventory of the image store, every file an image or skipped with a reason."""

import pandas as pd
from botocore.exceptions import BotoCoreError, ClientError
from dagster import (
    AssetCheckResult,
    AssetCheckSpec,
    AssetExecutionContext,
    DataVersion,
    Failure,
    MaterializeResult,
    MetadataValue,
    asset,
)

from .. import settings
from ..errors import expected_error
from ..images.listing import inventory_schema
from ..images.s3_inventory import ManifestError
from ..names import GROUP, IMAGE_STORE, RAW_IMAGES
from ..storage.artifacts import NewParts
from . import metadata
from .console import ExpectedFailure
from .resources import ImageStore, PublishedOutputs

CODE_VERSION = "inventory-v3"  # bumped when the computation changes: Dagster marks downstream stale
SKIPPED_LISTED = 200  # skipped files listed by name in the metadata (all are counted)
COLUMNS = (
    ("path", "string"),
    ("label", "string"),
    ("split", "string"),
    ("bytes", "int64"),
    ("fingerprint", "string"),
    ("skipped", "string"),
)


def _sync(context: AssetExecutionContext, images: ImageStore) -> dict:
    """emr deployment with FRUITS_IMAGES_DIR set: upload the local folder to the S3 store first."""
    report = images.sync_from_source()
    context.log.info(
        "synced %s -> %s: %d uploaded, %d already there, %d failed",
        images.source_dir,
        images.uri,
        report.uploaded,
        report.skipped,
        len(report.failed),
    )
    if report.failed:
        raise Failure(
            f"{len(report.failed)} uploads failed, first: {report.failed[0]}",
            metadata={"failed": MetadataValue.json([list(f) for f in report.failed[:100]])},
        )
    return {"uploaded": report.uploaded, "already_in_s3": report.skipped, "bytes_uploaded": report.bytes_uploaded}


@asset(
    name=RAW_IMAGES,
    # The observed image store: a new data version (the listing changed) is what automation reacts to.
    deps=[IMAGE_STORE],
    code_version=CODE_VERSION,
    group_name=GROUP,
    kinds={"parquet", "delta"},
    check_specs=[
        AssetCheckSpec("layout_parsed", asset=RAW_IMAGES, description="every image sits at <split>/<label>/<file>")
    ],
)
def raw_images(context: AssetExecutionContext, images: ImageStore, published: PublishedOutputs):
    """Inventory of the image store: one row per file (path, label, split, bytes, fingerprint, and
    why it was skipped when it is not an image), listed shard by shard (top-level folders, S3
    ``<split>/<label>/`` prefixes, or the data files of an S3 Inventory report) into parquet parts.

    In the emr deployment with FRUITS_IMAGES_DIR set, the local folder is first synced to S3.
    """
    current = published.snapshot(RAW_IMAGES)
    prefix = published.new_prefix(RAW_IMAGES, context.run_id)
    try:
        sync_metadata = _sync(context, images) if images.source_dir else {}
        stats = images.list_to_parts(prefix, published.location())
    except (FileNotFoundError, NotADirectoryError, PermissionError, ManifestError) as exc:
        published.discard(prefix)
        raise expected_error(ExpectedFailure(str(exc))) from None
    except (BotoCoreError, ClientError) as exc:  # a missing bucket, no credentials, no network
        published.discard(prefix)
        raise expected_error(
            ExpectedFailure(
                f"image store {images.uri} cannot be read: {exc}; check FRUITS_S3_BUCKET, the region and credentials"
            )
        ) from None
    except BaseException:
        published.discard(prefix)
        raise
    skipped_counts = stats.skipped_counts()
    if skipped_counts:
        # Nothing vanishes silently: every file that is not featurized is counted and listed.
        context.log.warning(
            "%d files under %s are not images and were skipped: %s",
            stats.skipped_total,
            images.uri,
            ", ".join(f"{n} {reason}" for reason, n in skipped_counts.items()),
        )
    if stats.images == 0:
        published.discard(prefix)
        raise expected_error(
            ExpectedFailure(
                f"no image files under {images.uri} ({stats.skipped_total} other files skipped); "
                "expected <split>/<label>/<file> images in a format Pillow reads: check FRUITS_IMAGES_DIR"
            )
        )
    digest = stats.digest.hexdigest()
    info = {"listing_digest": digest, "table_digest": stats.table_digest.hexdigest(), "images": stats.images}
    if current is not None and current.info.get("table_digest") == info["table_digest"]:
        # The same files as the committed version: no new version, downstream sees no change.
        published.discard(prefix)
        value = NewParts(None, COLUMNS, inventory_schema(), current.version, (), info)
    else:
        value = NewParts(
            prefix,
            COLUMNS,
            inventory_schema(),
            current.version if current else None,
            current.files if current else (),
            info,
        )
    context.log.info("%d images, %d classes under %s", stats.images, stats.classes, images.uri)
    counts = [(*k.split("\t", 1)[::-1], n) for k, n in stats.per_class.items()] + [(None, None, stats.unparsed)]
    # Which instance records this run and which data root its outputs go to, on the asset's page.
    where = (
        settings.instance_description() if settings.deployment() == "local" else f"deployment {settings.deployment()}"
    )
    return MaterializeResult(
        value=value,
        metadata={
            "dagster/row_count": stats.images,
            "images_root": MetadataValue.path(images.uri),
            "instance": where,
            "listed_from": images.inventory_manifest or "listing",
            "classes": stats.classes,
            "total_mb": round(stats.bytes / 1e6, 2),
            "per_split": {**stats.per_split, **({"(none)": stats.unparsed} if stats.unparsed else {})},
            "per_class": metadata.per_class_counts(counts),
            "preview": metadata.table(
                pd.DataFrame(stats.preview, columns=["path", "label", "split", "bytes"]).head(metadata.PREVIEW_ROWS),
                {"path": "string", "label": "string", "split": "string", "bytes": "int"},
                root=images.path_root(),
            ),
            "skipped": stats.skipped_total,
            "skipped_by_reason": MetadataValue.json(skipped_counts),
            "skipped_files": metadata.table(
                pd.DataFrame(stats.skipped_examples, columns=["path", "reason"]),
                {"path": "string", "reason": "string"},
                SKIPPED_LISTED,
                root=images.path_root(),
            ),
            **sync_metadata,
        },
        data_version=DataVersion(digest),  # unchanged images: downstream not stale
        check_results=[
            AssetCheckResult(
                check_name="layout_parsed",
                passed=stats.unparsed == 0,
                metadata={
                    "unparsed": stats.unparsed,
                    "examples": MetadataValue.json([e[0] for e in stats.unparsed_examples]),
                },
            )
        ],
    )
