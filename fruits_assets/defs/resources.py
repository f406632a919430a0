"""Resources: where images are, how Spark starts. Assets never pick a location themselves."""

from __future__ import annotations

import os
import sys
import uuid
from typing import Optional

import pandas as pd
from dagster import ConfigurableResource
from dagster_pyspark import LazyPySparkResource

from .. import settings
from ..analysis.pca import PcaModel
from ..errors import expected_error
from ..images.inventory import Scan, scan
from ..images.s3_sync import SyncReport, sync_images
from ..spark.featurize import spark_path_root
from ..storage.artifacts import FeatureModelArtifact
from ..storage.codecs import FEATURE_MODEL, PCA, read_table
from ..storage.fs import Location, filesystem, is_s3, join
from ..storage.versions import VersionedStore


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
        """Every file under the store: images (path, label, split, bytes) and what was skipped, with
        the reason (:mod:`fruits_assets.images.inventory`)."""
        return scan(self.uri, self.endpoint_url, self.region)


class StagingArea(ConfigurableResource):
    """Scratch space for outputs that Spark tasks write themselves (a local folder or
    ``s3://bucket/prefix``); the IO manager moves them into place. On EMR it sits under the
    staging prefix whose lifecycle rule expires what a crashed run leaves behind."""

    uri: str
    endpoint_url: Optional[str] = None
    region: Optional[str] = None

    def new_dir(self, name: str, run_id: str) -> str:
        """A fresh folder URI for one output of one run (nothing is created yet)."""
        # The whole run id: `fruits_assets.storage.residue` finds the folders of dead runs by it.
        return join(self.uri, f"{name}-{run_id}-{uuid.uuid4().hex[:6]}")

    def location(self) -> Location:
        """How Spark tasks reach the staging area (endpoint and region passed explicitly)."""
        return Location(self.endpoint_url, self.region)

    def discard(self, uri: str) -> None:
        """Delete a staged folder (after a failed run); missing is fine."""
        fs, path = filesystem(uri, self.endpoint_url, self.region)
        try:
            fs.delete_dir(path)
        except OSError:  # includes FileNotFoundError: nothing was staged
            pass


class PublishedOutputs(ConfigurableResource):
    """Read access to what is published (the same root as the IO manager), for assets that
    decide from the last published version whether work is needed at all."""

    root: str
    endpoint_url: Optional[str] = None
    region: Optional[str] = None

    def store(self) -> VersionedStore:
        return VersionedStore(self.root, self.endpoint_url, self.region)

    def location(self) -> Location:
        return Location(self.endpoint_url, self.region)

    def feature_model(self) -> tuple[FeatureModelArtifact | None, str | None]:
        """The published feature model with its version, or (None, None)."""
        store = self.store()
        current = store.current("feature_model")
        if current is None:
            return None, None
        try:
            return FEATURE_MODEL.read(store, current.uri), current.version
        except OSError:
            return None, None

    def current_uri(self, asset: str) -> Optional[str]:
        current = self.store().current(asset)
        return current.uri if current is not None else None

    def read_table(self, asset: str) -> Optional[pd.DataFrame]:
        """The published pandas table of ``asset`` (small tables only: rejects), or None."""
        uri = self.current_uri(asset)
        return None if uri is None else read_table(self.store(), uri)

    def pca_model(self) -> PcaModel | None:
        """The published PCA model, or None."""
        uri = self.current_uri("pca_model")
        if uri is None:
            return None
        try:
            return PCA.read(self.store(), uri)
        except (OSError, KeyError):
            return None  # an older format: refit
