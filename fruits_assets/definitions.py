"""One asset graph, resources picked by deployment (FRUITS_DEPLOYMENT=local|emr)."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

from dagster import (
    Definitions,
    ResourceDefinition,
    in_process_executor,
    load_assets_from_modules,
)
from dagster_shared.utils.warnings import (
    BetaWarning,
    PreviewWarning,
    SupersessionWarning,
)

from . import assets, settings
from .io_manager import VersionedIOManager
from .resources import FruitsSpark, ImageStore, PublishedOutputs, StagingArea

# Chosen knowingly: the EMR step launcher (superseded by Pipes, which cannot keep a cluster and an
# IO manager: DESIGN.md), asset `kinds` and data versions (beta/preview in 1.13).
for _category in (SupersessionWarning, BetaWarning, PreviewWarning):
    warnings.filterwarnings("ignore", category=_category)

LOG4J2_PROPERTIES = Path(__file__).with_name("log4j2.properties").as_uri()
LOCAL_SPARK_CONFIG = {
    "spark.master": settings.spark_master(),
    "spark.app.name": "fruits-assets",
    "spark.driver.memory": os.environ.get("FRUITS_SPARK_DRIVER_MEMORY", "4g"),
    "spark.sql.shuffle.partitions": "8",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.sql.session.timeZone": "UTC",
    # Local runs are short and share few cores with the Python workers: C1-only JIT compiles
    # far less and measured faster end to end (benchmarks/; README "Performance"). EMR keeps C2.
    "spark.driver.extraJavaOptions": os.environ.get("FRUITS_SPARK_DRIVER_JAVA_OPTIONS", "-XX:TieredStopAtLevel=1")
    + f" -Dlog4j2.configurationFile={LOG4J2_PROPERTIES}",
}


def local_resources(data_root: str | None = None, images_dir: str | None = None,
                    spark_config: dict | None = None) -> dict:
    """Embedded default: local Spark, outputs under FRUITS_DATA_ROOT, images in FRUITS_IMAGES_DIR."""
    spark = FruitsSpark(spark_config=spark_config or LOCAL_SPARK_CONFIG)
    root = data_root or settings.data_root()
    return {
        "pyspark": spark,
        "pyspark_step_launcher": ResourceDefinition.none_resource(description="local: steps run in-process"),
        "images": ImageStore(uri=images_dir or settings.images_dir()),
        "staging": StagingArea(uri=os.path.join(root, "_staging")),
        "io_manager": VersionedIOManager(root=root, pyspark=spark, staging_uri=os.path.join(root, "_staging")),
        "published": PublishedOutputs(root=root),
    }


def build_definitions(deployment: str | None = None) -> Definitions:
    deployment = deployment or settings.deployment()
    if deployment == "emr":
        from .emr.deployment import emr_resources

        resources, executor = emr_resources(), None
    else:
        # One process, one JVM for the whole run: Spark start-up is paid once, not per step.
        resources, executor = local_resources(), in_process_executor
    from .sensors import new_images_sensor, refresh_job

    return Definitions(assets=load_assets_from_modules([assets]), resources=resources, executor=executor,
                       jobs=[refresh_job], sensors=[new_images_sensor])
