"""Test harness playing AWS without AWS: moto's server for S3 and the EMR API, and a thread that
plays the EMR cluster by running each submitted step's spark-submit command locally.

What is real: the dagster-aws step launcher (staging, AddJobFlowSteps, polling, event and log
retrieval), the staged ``emr_step_main.py`` and job package fetched from S3, spark-submit, Spark
(local master instead of YARN), the product's S3 code against moto's S3 API.
What is played: EMRFS. hadoop-aws cannot be downloaded here, so Spark reaches ``s3://`` through
``MirrorS3FileSystem`` over a local folder that the harness syncs from moto before each step and
back to moto after it.
"""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import boto3

from fruits_assets_tests.conftest import free_port

HERE = Path(__file__).resolve().parent
ACCOUNT = "123456789012"  # moto's default account


def aws_env(endpoint: str, region: str) -> dict[str, str]:
    """Env for boto3/pyarrow clients talking to moto (fake credentials, never real ones)."""
    return {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": region,
        "AWS_REGION": region,
        "AWS_EC2_METADATA_DISABLED": "true",
    }


def build_mirror_jar(workdir: Path) -> Path:
    """Compile the EMRFS stand-in against the Hadoop client jars PySpark ships."""
    import pyspark

    jars = Path(pyspark.__file__).parent / "jars"
    classes = workdir / "classes"
    classes.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["javac", "-d", str(classes), "-cp", f"{jars}/*", str(HERE / "MirrorS3FileSystem.java")],
        check=True,
        capture_output=True,
    )
    jar = workdir / "mirrorfs.jar"
    subprocess.run(["jar", "cf", str(jar), "-C", str(classes), "fruitsharness"], check=True, capture_output=True)
    return jar


class FakeEmrCluster(threading.Thread):
    """Picks up steps the step launcher submits and runs their command locally."""

    def __init__(self, endpoint: str, region: str, workdir: Path, step_env: dict[str, str], master: str = "local[2]"):
        super().__init__(daemon=True)
        self.endpoint, self.region, self.workdir = endpoint, region, workdir
        self.mirror = workdir / "emrfs"
        self.step_env, self.master = step_env, master
        self.jar = build_mirror_jar(workdir)
        self.s3 = boto3.client(
            "s3",
            endpoint_url=endpoint,
            region_name=region,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        self.completed: list[tuple[str, str, int]] = []  # (step id, state, exit code)
        self._halt = threading.Event()

    # -- moto's EMR state: the cluster may be filed under another region's backend
    def _clusters(self):
        from moto.emr.models import emr_backends

        for _, backend in list(emr_backends[ACCOUNT].items()):
            yield from backend.clusters.values()

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=30)

    def run(self) -> None:
        while not self._halt.is_set():
            for cluster in list(self._clusters()):
                for step in list(cluster.steps):
                    if step.state in ("PENDING", "RUNNING") and all(
                        s.state in ("COMPLETED", "FAILED", "CANCELLED")
                        for s in cluster.steps[: cluster.steps.index(step)]
                    ):
                        step.state = "RUNNING"
                        try:
                            self._run_step(cluster, step)
                        except Exception as exc:  # a harness fault fails the step, never hangs the launcher
                            (self.workdir / "harness-error.txt").write_text(repr(exc))
                            step.state = "FAILED"
                            self.completed.append((step.id, "FAILED", -1))
                        cluster.state = "WAITING"
            time.sleep(0.5)

    # -- S3 <-> EMRFS stand-in
    def _sync_down(self) -> dict[str, float]:
        for bucket in [b["Name"] for b in self.s3.list_buckets()["Buckets"]]:
            for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
                for obj in page.get("Contents", []):
                    local = self.mirror / bucket / obj["Key"]
                    if obj["Key"].endswith("/"):  # a directory marker (pyarrow writes them)
                        local.mkdir(parents=True, exist_ok=True)
                        continue
                    if not local.exists() or local.stat().st_size != obj["Size"]:
                        local.parent.mkdir(parents=True, exist_ok=True)
                        self.s3.download_file(bucket, obj["Key"], str(local))
        return {str(p): p.stat().st_mtime for p in self.mirror.rglob("*") if p.is_file()}

    def _sync_up(self, before: dict[str, float]) -> None:
        for p in self.mirror.rglob("*"):
            if p.is_file() and before.get(str(p)) != p.stat().st_mtime and not p.name.endswith(".crc"):
                bucket, key = p.relative_to(self.mirror).parts[0], "/".join(p.relative_to(self.mirror).parts[1:])
                self.s3.upload_file(str(p), bucket, key)

    def _fetch(self, uri: str, dest: Path) -> Path:
        bucket, _, key = uri[len("s3://") :].partition("/")
        dest.parent.mkdir(parents=True, exist_ok=True)
        self.s3.download_file(bucket, key, str(dest))
        return dest

    def _run_step(self, cluster, step) -> None:
        args = list(step.args)
        stepdir = self.workdir / "steps" / step.id
        # spark-submit --master yarn --deploy-mode client [--conf k=v ...] --py-files ZIP MAIN BUCKET KEY
        confs, i = [], 5
        while args[i] == "--conf":
            confs += args[i : i + 2]
            i += 2
        assert args[i] == "--py-files", args
        code_zip = self._fetch(args[i + 1], stepdir / "code.zip")
        main = self._fetch(args[i + 2], stepdir / "emr_step_main.py")
        import pyspark

        command = [
            str(Path(pyspark.__file__).parent / "bin" / "spark-submit"),
            "--master",
            self.master,
            "--jars",
            str(self.jar),
            "--conf",
            "spark.hadoop.fs.s3.impl=fruitsharness.MirrorS3FileSystem",
            "--conf",
            "spark.hadoop.fs.s3.impl.disable.cache=true",
            "--conf",
            f"spark.hadoop.fruits.mirror.root={self.mirror}",
            "--conf",
            "spark.ui.enabled=false",
            *confs,
            "--py-files",
            str(code_zip),
            str(main),
            *args[i + 3 :],
        ]
        env = dict(
            os.environ,
            **self.step_env,
            FRUITS_EMR_CLUSTER_ID=cluster.id,
            PYSPARK_PYTHON=sys.executable,
            PYSPARK_DRIVER_PYTHON=sys.executable,
        )
        env.pop("PYTHONPATH", None)  # the code must come from the staged job package, as on EMR
        before = self._sync_down()
        proc = subprocess.run(command, cwd=stepdir, env=env, capture_output=True, text=True)
        self._sync_up(before)
        # EMR copies step logs to <LogUri>/<cluster>/steps/<step>/std{out,err}.gz
        log_bucket, _, log_prefix = cluster.log_uri.replace("s3n://", "s3://")[len("s3://") :].partition("/")
        for name, text in (("stdout.gz", proc.stdout), ("stderr.gz", proc.stderr)):
            self.s3.put_object(
                Bucket=log_bucket,
                Key=f"{log_prefix}{cluster.id}/steps/{step.id}/{name}",
                Body=gzip.compress(text.encode()),
            )
        (stepdir / "stderr.txt").write_text(proc.stderr)
        step.state = "COMPLETED" if proc.returncode == 0 else "FAILED"
        self.completed.append((step.id, step.state, proc.returncode))


class MotoAws:
    """moto's server on 127.0.0.1 in this process (so the harness can see and change EMR state)."""

    def __init__(self, region: str = "eu-west-3"):
        from moto.server import ThreadedMotoServer

        self.region = region
        self.port = free_port()
        self.server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self.endpoint = f"http://127.0.0.1:{self.port}"

    def __enter__(self):
        self.server.start()
        return self

    def __exit__(self, *exc):
        self.server.stop()

    @property
    def env(self) -> dict[str, str]:
        return aws_env(self.endpoint, self.region)

    def client(self, service: str):
        return boto3.client(
            service,
            endpoint_url=self.endpoint,
            region_name=self.region,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
