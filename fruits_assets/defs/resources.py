"""Resources: where images are, how Spark starts. Assets never pick a location themselves."""

from __future__ import annotations

import os
import sys
from typing import Optional

import pandas as pd
from dagster import ConfigurableResource
from dagster_pyspark import LazyPySparkResource

from .. import settings
from ..analysis.pca import PcaModel
from ..errors import expected_error
from ..images.inventory import Scan, scan
from ..images.listing import ListingStats, Shard, list_in_threads, list_to_parts, plan_shards
from ..images.s3_sync import SyncReport, sync_images
from ..names import FEATURE_MODEL, PCA_MODEL
from ..spark.featurize import spark_path_root
from ..storage.artifacts import FeatureModelArtifact
from ..storage.codecs import read_frame, read_model
from ..storage.fs import Location, is_s3
from ..storage.tables import Lake, Snapshot, TableError
from .console import ExpectedFailure


class FruitsSpark(LazyPySparkResource):
    """A Spark session created on first use, whose Python workers run this interpreter.

    PySpark 4.x local mode ignored ``spark.pyspark.python`` set on the builder for its workers;
    the environment variable, set before the session starts, is what works.
    """

    def _init_session(self) -> None:
        if self._spark_session is not None:
            return
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
        master = self.spark_config.get("spark.master")
        if master and master.startswith("local"):
            # One machine: bind to loopback, and Spark no longer warns that the hostname does.
            os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
        if master is not None or not settings.spark_home():  # EMR's spark-submit brings its own
            try:
                settings.java_executable()
            except settings.SettingsError as exc:
                raise expected_error(exc) from None
        try:
            super()._init_session()
            # Spark's own WARNs (native-hadoop, hostname, "Broadcasting large task binary") look
            # like failures in a demo; FRUITS_SPARK_LOG_LEVEL=WARN brings them back.
            self.spark_session.sparkContext.setLogLevel(settings.spark_log_level())
        except Exception as exc:
            if "JAVA_GATEWAY_EXITED" not in str(exc) and "Java gateway process exited" not in str(exc):
                raise
            raise expected_error(
                settings.SettingsError(
                    f"Spark did not start (master {master or 'from spark-submit'}): check FRUITS_SPARK_MASTER and "
                    "that Java 17+ runs (`java -version`); the JVM's own message is printed above"
                )
            ) from None


class ImageStore(ConfigurableResource):
    """The image collection: a local folder or ``s3://bucket/prefix``, laid out ``<split>/<label>/<file>``."""

    uri: str
    endpoint_url: Optional[str] = None
    region: Optional[str] = None
    source_dir: Optional[str] = None  # emr: local folder uploaded to ``uri`` by raw_images
    inventory_manifest: Optional[str] = None  # an S3 Inventory manifest.json read instead of listing
    inventory_max_age_hours: int = 48

    def s3_client(self):
        import boto3

        return boto3.client("s3", region_name=self.region, endpoint_url=self.endpoint_url)

    def sync_from_source(self) -> SyncReport:
        """Upload ``source_dir`` to the S3 store."""
        assert self.source_dir is not None
        bucket, _, prefix = self.uri[len("s3://") :].partition("/")
        return sync_images(self.s3_client(), self.source_dir, bucket, prefix)

    def location(self) -> Location:
        """How Spark tasks reach the images (endpoint and region passed to them explicitly)."""
        return Location(self.endpoint_url, self.region)

    def spark_root(self) -> str:
        """The root: an absolute local folder or the s3:// URI."""
        return self.uri if is_s3(self.uri) else os.path.abspath(self.uri)

    def path_root(self) -> str:
        """The root as the tables spell image paths (``file:/abs/dir`` or ``s3://bucket/prefix``)."""
        return spark_path_root(self.spark_root())

    def scan(self) -> Scan:
        """Every file under the store, held in memory (small stores, tests): images (path, label,
        split, bytes) and what was skipped, with the reason (:mod:`fruits_assets.images.inventory`)."""
        return scan(self.uri, self.endpoint_url, self.region, self.inventory_manifest, self.inventory_max_age_hours)

    def shards(self) -> list[Shard]:
        """The units its listing is split into (images/listing.py)."""
        return plan_shards(
            self.uri, self.endpoint_url, self.region, self.inventory_manifest, self.inventory_max_age_hours
        )

    def list_stats(self) -> ListingStats:
        """Counts and the digest of every image, listed shard by shard; no row is kept (the sensor)."""
        return list_in_threads(self.uri, self.shards(), self.endpoint_url, self.region)[0]

    def list_to_parts(self, out_prefix: str, parts_at: Location) -> ListingStats:
        """The inventory written as parquet parts under ``out_prefix``, shard by shard."""
        return list_to_parts(self.uri, self.shards(), out_prefix, self.endpoint_url, self.region, parts_at)


class PublishedOutputs(ConfigurableResource):
    """Read access to the committed tables (the same root as the IO manager), and where a step's
    tasks write their new files: assets decide from the last committed version whether work is
    needed at all, and what changes."""

    root: str
    endpoint_url: Optional[str] = None
    region: Optional[str] = None

    def lake(self) -> Lake:
        return Lake(self.root, self.endpoint_url, self.region)

    def location(self) -> Location:
        return Location(self.endpoint_url, self.region)

    def snapshot(self, asset: str) -> Optional[Snapshot]:
        """The newest committed version of ``asset``, its files checked; None if never committed.
        A damaged table ends the run in one line naming the file and the repair."""
        try:
            return self.lake().snapshot(asset)
        except TableError as exc:
            raise expected_error(ExpectedFailure(str(exc))) from None

    def new_prefix(self, asset: str, run_id: str) -> str:
        return self.lake().new_prefix(asset, run_id)

    def discard(self, prefix: str) -> None:
        self.lake().discard(prefix)

    def _model(self, asset: str):
        snap = self.snapshot(asset)
        if snap is None:
            return None, None
        try:
            return read_model(self.lake(), snap), snap.version
        except TableError as exc:
            raise expected_error(ExpectedFailure(str(exc))) from None

    def feature_model(self) -> tuple[FeatureModelArtifact | None, int | None]:
        """The committed feature model with its version, or (None, None)."""
        return self._model(FEATURE_MODEL)

    def batches(self, asset: str, columns: list[str]):
        """The committed rows of ``asset``, an Arrow batch at a time (checksums verified)."""
        import pyarrow.parquet as pq

        snap = self.snapshot(asset)
        if snap is None:
            return
        lake = self.lake()
        for uri in snap.file_uris():
            fs, path = lake.fs(uri)
            with fs.open_input_file(path) as fh:
                yield from pq.ParquetFile(fh, page_checksum_verification=True).iter_batches(65_536, columns=columns)

    def read_table(self, asset: str) -> Optional[pd.DataFrame]:
        """The committed pandas table of ``asset`` (small tables only: rejects), or None."""
        snap = self.snapshot(asset)
        return None if snap is None else read_frame(self.lake(), snap)

    def pca_model(self) -> tuple[PcaModel | None, int | None]:
        """The committed PCA model with its version, or (None, None)."""
        return self._model(PCA_MODEL)
