"""The Dagster instance this project writes into DAGSTER_HOME (``fruits-assets home init``).

Its SQLite storage serializes its own creation: two first runs started together on a fresh
DAGSTER_HOME both ran Dagster's schema migrations at once and crashed ("Version table
'alembic_version' has more than one head present"). With a file lock around the creation, the
second waits a moment for the first and then finds the schema in place.
"""

from __future__ import annotations

import fcntl
import os
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
