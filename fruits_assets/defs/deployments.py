"""Resources by deployment (FRUITS_DEPLOYMENT): the same assets, local Spark and a data folder, or
Spark steps shipped to EMR with data in S3."""

from __future__ import annotations

import shutil
import tempfile
from functools import cache
from pathlib import Path

from dagster import ResourceDefinition

from .. import settings
from .io_manager import TableIOManager
from .resources import FruitsSpark, ImageStore, PublishedOutputs

PACKAGE_DIR = Path(__file__).resolve().parents[1]
LOG4J2_PROPERTIES = (PACKAGE_DIR / "spark" / "log4j2.properties").as_uri()


def local_spark_config() -> dict[str, str]:
    return {
        "spark.master": settings.spark_master(),
        "spark.app.name": "fruits-assets",
        "spark.driver.memory": settings.spark_driver_memory(),
        "spark.sql.shuffle.partitions": "8",
        "spark.sql.execution.arrow.pyspark.enabled": "true",
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
        "spark.sql.session.timeZone": "UTC",
        # Local runs are short and share few cores with the Python workers: C1-only JIT compiles
        # far less and measured faster end to end (docs/performance.md). EMR keeps C2.
        "spark.driver.extraJavaOptions": settings.spark_driver_java_options()
        + f" -Dlog4j2.configurationFile={LOG4J2_PROPERTIES}",
    }


def local_resources(
    data_root: str | None = None, images_dir: str | None = None, spark_config: dict | None = None
) -> dict:
    """Embedded default: local Spark, outputs under FRUITS_DATA_ROOT, images in FRUITS_IMAGES_DIR."""
    spark = FruitsSpark(spark_config=spark_config or local_spark_config())
    root = data_root or settings.data_root()
    return {
        "pyspark": spark,
        "pyspark_step_launcher": ResourceDefinition.none_resource(description="local: steps run in-process"),
        "images": ImageStore(uri=images_dir or settings.images_dir()),  # no inventory report locally
        "io_manager": TableIOManager(
            root=root, keep_versions=settings.keep_versions(), min_age_hours=settings.gc_min_age_hours()
        ),
        "published": PublishedOutputs(root=root),
    }


# Spark settings for steps on the cluster (master and Python come from spark-submit and the
# cluster's spark-env; see emr/cluster.py).
EMR_SPARK_CONFIG = {
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    "spark.sql.execution.arrow.maxRecordsPerBatch": "256",
    "spark.sql.session.timeZone": "UTC",
}


@cache
def job_package_dir() -> str:
    """A folder holding only the ``fruits_assets`` package, for the launcher to zip and ship.

    The launcher zips the whole folder it is given; the repository root would drag .venv and
    data/ along. On the cluster the package runs from that zip and nothing is staged. Made once
    per process, and only by the emr deployment.
    """
    if not PACKAGE_DIR.is_dir():
        return str(PACKAGE_DIR.parent)
    staged = Path(tempfile.mkdtemp(prefix="fruits-job-package-"))
    shutil.copytree(PACKAGE_DIR, staged / PACKAGE_DIR.name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return str(staged)


def emr_resources() -> dict:
    """Resources for FRUITS_DEPLOYMENT=emr; a missing setting is a one-line error naming it."""
    from ..storage.tables import Lake
    from .emr_launcher import CommittingEmrStepLauncher

    s = settings.EmrSettings.from_env()
    endpoint = settings.s3_endpoint_url()
    spark = FruitsSpark(spark_config=EMR_SPARK_CONFIG)
    return {
        "pyspark": spark,
        "pyspark_step_launcher": ResourceDefinition(
            resource_fn=lambda _: CommittingEmrStepLauncher(
                lake=Lake(s.assets_uri, endpoint, s.region),
                region_name=s.region,
                staging_bucket=s.bucket,
                staging_prefix=s.staging_prefix,
                wait_for_logs=True,
                action_on_failure="CONTINUE",  # one failed step must not cancel the cluster's others
                cluster_id=s.cluster_id,
                spark_config={"spark": {"sql": {"execution": {"arrow": {"maxRecordsPerBatch": 256}}}}},
                local_job_package_path=job_package_dir(),
                deploy_local_job_package=True,
            ),
            description="emr: Spark steps run on the cluster; this process commits their outputs",
        ),
        "images": ImageStore(
            uri=s.raw_uri,
            endpoint_url=endpoint,
            region=s.region,
            source_dir=s.images_dir,
            inventory_manifest=settings.s3_inventory_manifest(),
            inventory_max_age_hours=settings.s3_inventory_max_age_hours(),
        ),
        "io_manager": TableIOManager(
            root=s.assets_uri,
            endpoint_url=endpoint,
            region=s.region,
            keep_versions=settings.keep_versions(),
            min_age_hours=settings.gc_min_age_hours(),
            commit_by_launcher=True,
        ),
        "published": PublishedOutputs(root=s.assets_uri, endpoint_url=endpoint, region=s.region),
    }
