"""React to new images: a sensor lists the image store each tick and requests a run of the whole
graph when the listing changed (an image added, changed or removed) since its cursor.

A tick costs one listing, never an image read: the same shards as raw_images (images/listing.py),
listed by a thread pool (``os.scandir`` + ``stat`` locally; ``ListObjectsV2`` calls per
``<split>/<label>/`` prefix, concurrently, on S3; or an S3 Inventory report); the cursor is the
order-free digest of every (path, fingerprint), added up shard by shard with no row kept, so the
same change never requests two runs, and the run itself only featurizes what changed.
"""

from __future__ import annotations

from dagster import (
    AssetSelection,
    DefaultSensorStatus,
    RunRequest,
    SensorEvaluationContext,
    SkipReason,
    define_asset_job,
    sensor,
)

from .. import settings
from ..images.s3_inventory import ManifestError
from .resources import ImageStore

refresh_job = define_asset_job(
    "refresh_all_assets",
    selection=AssetSelection.all(),
    description="raw_images and everything downstream (incremental)",
)


@sensor(
    job=refresh_job,
    minimum_interval_seconds=settings.sensor_interval_s(),
    default_status=DefaultSensorStatus.STOPPED,
    description="Requests a run of every asset when images are added, changed or removed "
    "(listing only; see README, 'Incremental runs')",
)
def new_images_sensor(context: SensorEvaluationContext, images: ImageStore):
    try:
        stats = images.list_stats()
    except (FileNotFoundError, NotADirectoryError, ManifestError) as exc:
        return SkipReason(str(exc))
    if stats.images == 0:
        return SkipReason(f"no images under {images.uri} yet")
    digest = stats.digest.hexdigest()
    if digest == context.cursor:
        return SkipReason(f"no change in {stats.images} images since the last run request")
    context.update_cursor(digest)
    # No run_key: the cursor already requests one run per change, and a listing that returns to an
    # earlier state (an image added, then removed) must request a run again.
    return RunRequest(tags={"fruits/images": str(stats.images), "fruits/listing": digest[:16]})
