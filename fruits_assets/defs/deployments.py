"""Resources of the ``emr`` deployment: same assets, Spark steps shipped to EMR, data in S3."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from dagster_aws.emr import emr_pyspark_step_launcher
from dagster_aws.s3 import S3Resource

from .. import settings
from ..io_manager import VersionedIOManager
from ..resources import FruitsSpark, ImageStore, PublishedOutputs, StagingArea

PACKAGE_DIR = Path(__file__).resolve().parents[1]

# Spark settings for steps on the cluster (master and Python come from spark-submit and the
# cluster's spark-env; see cluster.py).
EMR_SPARK_CONFIG = {
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    "spark.sql.execution.arrow.maxRecordsPerBatch": "256",
    "spark.sql.session.timeZone": "UTC",
}


def job_package_dir() -> str:
    """A folder holding only the ``fruits_assets`` package, for the launcher to zip and ship.

    The launcher zips the whole folder it is given; the repository root would drag .venv and
    data/ along. On the cluster the package runs from that zip and nothing is staged.
    """
    if not PACKAGE_DIR.is_dir():
        return str(PACKAGE_DIR.parent)
    staged = Path(tempfile.mkdtemp(prefix="fruits-job-package-"))
    shutil.copytree(PACKAGE_DIR, staged / PACKAGE_DIR.name,
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return str(staged)


def emr_resources() -> dict:
    """Resources for FRUITS_DEPLOYMENT=emr; a missing setting is a one-line error naming it."""
    s = settings.EmrSettings.from_env()
    endpoint = settings.s3_endpoint_url()
    spark = FruitsSpark(spark_config=EMR_SPARK_CONFIG)
    return {
        "pyspark": spark,
        "pyspark_step_launcher": emr_pyspark_step_launcher.configured({
            "cluster_id": s.cluster_id,
            "region_name": s.region,
            "staging_bucket": s.bucket,
            "staging_prefix": s.staging_prefix,
            "local_job_package_path": job_package_dir(),
            "deploy_local_job_package": True,
            "action_on_failure": "CONTINUE",  # one failed step must not cancel the cluster's others
            "wait_for_logs": True,
            "spark_config": {"spark": {"sql": {"execution": {"arrow": {"maxRecordsPerBatch": 256}}}}},
        }),
        "images": ImageStore(uri=s.raw_uri, endpoint_url=endpoint, region=s.region, source_dir=s.images_dir),
        # Under the staging prefix: `fruits-assets s3 init`'s lifecycle rule expires leftovers.
        "staging": StagingArea(uri=f"s3://{s.bucket}/{s.staging_prefix}/outputs", endpoint_url=endpoint,
                               region=s.region),
        "io_manager": VersionedIOManager(root=s.assets_uri, pyspark=spark, endpoint_url=endpoint, region=s.region,
                                         staging_uri=f"s3://{s.bucket}/{s.staging_prefix}/outputs"),
        "published": PublishedOutputs(root=s.assets_uri, endpoint_url=endpoint, region=s.region),
        "s3": S3Resource(region_name=s.region, endpoint_url=endpoint),
    }
