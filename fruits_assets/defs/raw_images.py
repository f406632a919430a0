"""raw_images: the inventory of the image store, every file an image or skipped with a reason."""

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
from ..images.inventory import listing_digest
from ..names import GROUP, IMAGE_STORE, RAW_IMAGES
from . import metadata
from .console import ExpectedFailure
from .resources import ImageStore

CODE_VERSION = "inventory-v2"  # bumped when the computation changes: Dagster marks downstream stale
SKIPPED_LISTED = 200  # skipped files listed by name in the metadata (all are counted)


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
    kinds={"parquet", "pandas"},
    check_specs=[
        AssetCheckSpec("layout_parsed", asset=RAW_IMAGES, description="every image sits at <split>/<label>/<file>")
    ],
)
def raw_images(context: AssetExecutionContext, images: ImageStore):
    """Inventory of the image store: one row per image file (path, label, split, bytes).

    In the emr deployment with FRUITS_IMAGES_DIR set, the local folder is first synced to S3.
    """
    try:
        sync_metadata = _sync(context, images) if images.source_dir else {}
        scanned = images.scan()
    except (FileNotFoundError, NotADirectoryError, PermissionError) as exc:
        raise expected_error(ExpectedFailure(str(exc))) from None
    except (BotoCoreError, ClientError) as exc:  # a missing bucket, no credentials, no network
        raise expected_error(
            ExpectedFailure(
                f"image store {images.uri} cannot be read: {exc}; check FRUITS_S3_BUCKET, the region and credentials"
            )
        ) from None
    inventory, skipped = scanned.images, scanned.skipped
    skipped_counts = scanned.skipped_counts()
    if skipped_counts:
        # Nothing vanishes silently: every file that is not featurized is counted and listed.
        context.log.warning(
            "%d files under %s are not images and were skipped: %s",
            len(skipped),
            images.uri,
            ", ".join(f"{n} {reason}" for reason, n in skipped_counts.items()),
        )
    if inventory.empty:
        raise expected_error(
            ExpectedFailure(
                f"no image files under {images.uri} ({len(skipped)} other files skipped); "
                "expected <split>/<label>/<file> images in a format Pillow reads: check FRUITS_IMAGES_DIR"
            )
        )
    unparsed = inventory[inventory["label"].isna()]
    context.log.info("%d images, %d classes under %s", len(inventory), inventory["label"].nunique(), images.uri)
    # Which instance records this run and which data root its outputs go to, on the asset's page.
    where = (
        settings.instance_description() if settings.deployment() == "local" else f"deployment {settings.deployment()}"
    )
    return MaterializeResult(
        value=inventory,
        metadata={
            "dagster/row_count": len(inventory),
            "images_root": MetadataValue.path(images.uri),
            "instance": where,
            "classes": int(inventory["label"].nunique()),
            "total_mb": round(int(inventory["bytes"].sum()) / 1e6, 2),
            "per_split": {str(k): int(v) for k, v in inventory["split"].value_counts(dropna=False).items()},
            "per_class": metadata.per_class(inventory),
            "preview": metadata.table(
                inventory,
                {"path": "string", "label": "string", "split": "string", "bytes": "int"},
                metadata.PREVIEW_ROWS,
                root=images.path_root(),
            ),
            "skipped": len(skipped),
            "skipped_by_reason": MetadataValue.json(skipped_counts),
            "skipped_files": metadata.table(
                skipped, {"path": "string", "reason": "string"}, SKIPPED_LISTED, root=images.path_root()
            ),
            **sync_metadata,
        },
        data_version=DataVersion(listing_digest(inventory)),  # unchanged images: downstream not stale
        check_results=[
            AssetCheckResult(
                check_name="layout_parsed",
                passed=unparsed.empty,
                metadata={"unparsed": len(unparsed), "examples": MetadataValue.json(unparsed["path"].head(5).tolist())},
            )
        ],
    )
