"""Resources: where images are, how Spark starts. Assets never pick a location themselves."""

from __future__ import annotations

import os
import sys
from typing import Optional

import pandas as pd
from dagster import ConfigurableResource
from dagster_pyspark import LazyPySparkResource

from .storage import filesystem, is_s3, join


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
        if master is not None or not os.environ.get("SPARK_HOME"):  # EMR's spark-submit brings its own
            from .settings import SettingsError, expected_error, java_executable

            try:
                java_executable()
            except SettingsError as exc:
                raise expected_error(exc) from None
        try:
            super()._init_session()
            from .settings import spark_log_level

            # Spark's own WARNs (native-hadoop, hostname, "Broadcasting large task binary") look
            # like failures in a demo; FRUITS_SPARK_LOG_LEVEL=WARN brings them back.
            self._spark_session.sparkContext.setLogLevel(spark_log_level())
        except Exception as exc:
            if "JAVA_GATEWAY_EXITED" not in str(exc) and "Java gateway process exited" not in str(exc):
                raise
            from .settings import SettingsError, expected_error

            raise expected_error(SettingsError(
                f"Spark did not start (master {master or 'from spark-submit'}): check FRUITS_SPARK_MASTER and "
                "that Java 17+ runs (`java -version`); the JVM's own message is printed above")) from None


class ImageStore(ConfigurableResource):
    """The image collection: a local folder or ``s3://bucket/prefix``, laid out ``<split>/<label>/<file>``."""

    uri: str
    endpoint_url: Optional[str] = None
    region: Optional[str] = None
    source_dir: Optional[str] = None  # emr: local folder uploaded to ``uri`` by raw_images

    def s3_client(self):
        import boto3

        return boto3.client("s3", region_name=self.region, endpoint_url=self.endpoint_url)

    def sync_from_source(self):
        """Upload ``source_dir`` to the S3 store; returns a :class:`~fruits_assets.s3_sync.SyncReport`."""
        from .s3_sync import sync_images

        bucket, _, prefix = self.uri[len("s3://"):].partition("/")
        return sync_images(self.s3_client(), self.source_dir, bucket, prefix)

    def location(self):
        """How Spark tasks reach the images (endpoint and region passed to them explicitly)."""
        from .featurize import Location

        return Location(self.endpoint_url, self.region)

    def spark_root(self) -> str:
        """The root: an absolute local folder or the s3:// URI."""
        return self.uri if is_s3(self.uri) else os.path.abspath(self.uri)

    def scan(self):
        """Every file under the store: images (path, label, split, bytes) and what was skipped, with
        the reason (:mod:`fruits_assets.inventory`)."""
        from .inventory import scan

        return scan(self.uri, self.endpoint_url, self.region)

    def inventory(self) -> pd.DataFrame:
        """Every image file: path (`file:/abs/...` or `s3://bucket/key`), label, split, bytes."""
        return self.scan().images


class StagingArea(ConfigurableResource):
    """Scratch space for outputs that Spark tasks write themselves (a local folder or
    ``s3://bucket/prefix``); the IO manager moves them into place. On EMR it sits under the
    staging prefix whose lifecycle rule expires what a crashed run leaves behind."""

    uri: str
    endpoint_url: Optional[str] = None
    region: Optional[str] = None

    def new_dir(self, name: str, run_id: str) -> str:
        """A fresh folder URI for one output of one run (nothing is created yet)."""
        import uuid

        # The whole run id: `fruits_assets.residue` finds the folders of dead runs by it.
        return join(self.uri, f"{name}-{run_id}-{uuid.uuid4().hex[:6]}")

    def location(self):
        """How Spark tasks reach the staging area (endpoint and region passed explicitly)."""
        from .featurize import Location

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

    def store(self):
        from .storage import VersionedStore

        return VersionedStore(self.root, self.endpoint_url, self.region)

    def feature_model(self):
        """The published feature model (FeatureModelArtifact) with its version, or (None, None)."""
        import json

        from .artifacts import FeatureModelArtifact

        store = self.store()
        current = store.current("feature_model")
        if current is None:
            return None, None
        try:
            provenance = json.loads(store.read_bytes(join(current.uri, "provenance.json")))
            model = store.read_bytes(join(current.uri, "model.tflite"))
        except OSError:
            return None, None
        return FeatureModelArtifact(model, provenance), current.version

    def current_uri(self, asset: str) -> Optional[str]:
        current = self.store().current(asset)
        return current.uri if current is not None else None

    def read_table(self, asset: str) -> Optional[pd.DataFrame]:
        """The published pandas table of ``asset`` (small tables only: rejects), or None."""
        import pyarrow.dataset as ds

        uri = self.current_uri(asset)
        if uri is None:
            return None
        fs, path = filesystem(uri, self.endpoint_url, self.region)
        return ds.dataset(path, filesystem=fs, format="parquet").to_table().to_pandas()

    def pca_model(self):
        """The published PCA model (pca_math.PcaModel), or None."""
        from .pca_math import load_npz

        uri = self.current_uri("pca_model")
        if uri is None:
            return None
        store = self.store()
        try:
            return load_npz(store.read_bytes(join(uri, "pca.npz")), store.read_bytes(join(uri, "pca.json")))
        except (OSError, KeyError):
            return None  # an older format: refit
