"""Resources: where images are, how Spark starts. Assets never pick a location themselves."""

from __future__ import annotations

import os
import sys
from typing import Optional

import pandas as pd
from dagster import ConfigurableResource
from dagster_pyspark import LazyPySparkResource

from .layout import is_image_name, parse_image_path, relative_image_path
from .storage import filesystem, is_s3, join

INVENTORY_COLUMNS = ["path", "label", "split", "bytes"]


class FruitsSpark(LazyPySparkResource):
    """A Spark session created on first use, whose Python workers run this interpreter.

    PySpark 4.x local mode ignored ``spark.pyspark.python`` set on the builder for its workers;
    the environment variable, set before the session starts, is what works.
    """

    def _init_session(self) -> None:
        if self._spark_session is None:
            os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
            os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
        super()._init_session()


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

    def inventory(self) -> pd.DataFrame:
        """Every image file: path (`file:/abs/...` or `s3://bucket/key`), label, split, bytes."""
        fs, base = filesystem(self.spark_root(), self.endpoint_url, self.region)
        import pyarrow.fs as pafs

        try:
            infos = fs.get_file_info(pafs.FileSelector(base, recursive=True))
        except FileNotFoundError:
            raise FileNotFoundError(
                f"image store {self.uri} does not exist (set FRUITS_IMAGES_DIR, or run "
                f"`python -m fruits_assets.sample_data {self.uri}`)"
            ) from None
        rows = []
        for info in infos:
            if info.type != pafs.FileType.File or not is_image_name(info.base_name):
                continue
            path = ("s3://" + info.path) if is_s3(self.uri) else ("file:" + info.path)
            try:
                split, label = parse_image_path(relative_image_path(info.path, base))
            except ValueError:
                split, label = None, None  # featurization records it as a reject with the reason
            rows.append((path, label, split, int(info.size)))
        return pd.DataFrame(rows, columns=INVENTORY_COLUMNS).sort_values("path", ignore_index=True)


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

        return join(self.uri, f"{name}-{run_id[:8]}-{uuid.uuid4().hex[:6]}")

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
