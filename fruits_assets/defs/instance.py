"""The Dagster instance this project writes into DAGSTER_HOME (``fruits-assets home init``).

Its SQLite storage serializes its own creation: two first runs started together on a fresh
DAGSTER_HOME both ran Dagster's schema migrations at once and crashed ("Version table
'alembic_version' has more than one head present"). With a file lock around the creation, the
second waits a moment for the first and then finds the schema in place.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import tempfile
from pathlib import Path

from dagster._core.storage.sqlite_storage import DagsterSqliteStorage

INSTANCE_YAML = """\
# Written by `fruits-assets home init` (make demo / ui / test). Edit freely; it is not overwritten.
storage:
  custom:
    module: fruits_assets.defs.instance
    class: SerializedSqliteStorage
    config:
      base_dir:
        env: DAGSTER_HOME
telemetry:
  enabled: false
# Run logs on the console at INFO (Dagster's default is DEBUG: every event of every step).
python_logs:
  python_log_level: INFO
"""


OLD_MODULE = "fruits_assets.instance_storage"


class SerializedSqliteStorage(DagsterSqliteStorage):
    """Dagster's SQLite storage, created under an exclusive lock on ``<base_dir>/.storage.lock``."""

    @classmethod
    def from_config_value(cls, inst_data, config_value):  # noqa: D102 - Dagster's ConfigurableClass hook
        base_dir = config_value["base_dir"]
        os.makedirs(base_dir, exist_ok=True)
        with open(os.path.join(base_dir, ".storage.lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                return cls.from_local(inst_data=inst_data, **config_value)
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)


def init_home(home: str | os.PathLike) -> Path:
    """Create DAGSTER_HOME with this project's dagster.yaml (kept if it exists); returns its path."""
    path = Path(home).expanduser().resolve() / "dagster.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists() or not path.read_text().strip():
        path.write_text(INSTANCE_YAML)
    elif OLD_MODULE in (text := path.read_text()):
        # Written before the package was laid out by concern: the storage class moved here.
        path.write_text(text.replace(OLD_MODULE, "fruits_assets.defs.instance"))
    return path


SERVED_MARK = "# Written by `fruits-assets serve`"
SERVED_INSTANCE_YAML = """\
{mark} (make serve, compose): rewritten at every start from the settings; holds the
# database URL and its password, so it is readable by its owner only and never committed.
storage:
  postgres:
    postgres_url: {dsn}
# Runs wait in a queue: each local run is one Spark JVM using every core (FRUITS_MAX_CONCURRENT_RUNS).
run_coordinator:
  module: dagster.core.run_coordinator
  class: QueuedRunCoordinator
  config:
    max_concurrent_runs: {max_runs}
# A run whose launch was cut short (its process never started) ends FAILURE instead of staying
# STARTING; a cancellation that hangs ends too. A STARTED run's process belongs to the code server
# (Dagster's default launcher, no health check), so a daemon's death does not touch it.
run_monitoring:
  enabled: true
  start_timeout_seconds: 300
  cancel_timeout_seconds: 120
  max_resume_run_attempts: 0
  poll_interval_seconds: {poll_s}
telemetry:
  enabled: false
python_logs:
  python_log_level: INFO
"""
SERVED_WORKSPACE_YAML = """\
{mark}: the code location served by `dagster code-server` (gRPC), for the daemon and the webserver.
load_from:
  - grpc_server:
      host: {host}
      port: {port}
      location_name: fruits_assets
"""


def init_served_home(home: str | os.PathLike, dsn: str, max_runs: int, code_host: str, code_port: int) -> Path:
    """Write the served instance (PostgreSQL storage, run queue, run monitoring) and its workspace into
    ``home``; refuses a home holding another instance (e.g. `make demo`'s SQLite one). Returns the home."""
    root = Path(home).expanduser().resolve()
    root.mkdir(parents=True, exist_ok=True)
    # dagster-postgres ships psycopg2; SQLAlchemy 2.1 reads a bare postgresql:// as psycopg 3.
    dsn = re.sub(r"^postgres(ql)?://", "postgresql+psycopg2://", dsn)
    path = root / "dagster.yaml"
    if path.exists() and path.read_text().strip() and not path.read_text().startswith(SERVED_MARK):
        raise ValueError(
            f"DAGSTER_HOME={root} holds another instance's dagster.yaml (make demo's SQLite one?): "
            "serve needs a home of its own (SERVE_HOME, default .serve/)"
        )
    text = SERVED_INSTANCE_YAML.format(mark=SERVED_MARK, dsn=json.dumps(dsn), max_runs=max_runs, poll_s=10)
    _replace(path, text, 0o600)
    _replace(root / "workspace.yaml", SERVED_WORKSPACE_YAML.format(mark=SERVED_MARK, host=code_host, port=code_port))
    return root


def _replace(path: Path, text: str, mode: int = 0o644) -> None:
    """Write ``text`` to ``path`` in one step (a temporary file renamed over it): the services of
    Compose share this folder and each writes it at start, while the others may be reading it."""
    if path.exists() and path.read_text() == text:
        return
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.chmod(tmp, mode)
    os.replace(tmp, path)
