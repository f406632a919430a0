"""The served instance's files (`make serve`, Compose): what Dagster reads, who may read it."""

import pytest
import yaml

from fruits_assets.defs.instance import init_home, init_served_home

pytestmark = pytest.mark.fast


def test_served_instance_is_postgres_queued_monitored_and_owner_only(tmp_path):
    home = init_served_home(tmp_path / "home", "postgresql://u:p%40ss'\"@db:5432/dagster", 2, "code", 4000)
    config = yaml.safe_load((home / "dagster.yaml").read_text())
    assert config["storage"]["postgres"]["postgres_url"] == "postgresql+psycopg2://u:p%40ss'\"@db:5432/dagster"
    assert config["run_coordinator"]["class"] == "QueuedRunCoordinator"
    assert config["run_coordinator"]["config"]["max_concurrent_runs"] == 2
    assert config["run_monitoring"]["enabled"] is True
    assert oct((home / "dagster.yaml").stat().st_mode)[-3:] == "600"  # it holds the password
    workspace = yaml.safe_load((home / "workspace.yaml").read_text())
    assert workspace["load_from"] == [{"grpc_server": {"host": "code", "port": 4000, "location_name": "fruits_assets"}}]
    # Written again at every start, to the same effect; never a leftover temporary file.
    init_served_home(home, "postgresql://u:other@db:5432/dagster", 1, "code", 4000)
    assert "other" in (home / "dagster.yaml").read_text() and sorted(p.name for p in home.iterdir()) == [
        "dagster.yaml",
        "workspace.yaml",
    ]


def test_served_instance_refuses_the_demo_home(tmp_path):
    """make demo's SQLite instance is never turned into a PostgreSQL one (its history would vanish)."""
    demo = init_home(tmp_path / "demo").parent
    with pytest.raises(ValueError, match="holds another instance's dagster.yaml"):
        init_served_home(demo, "postgresql://u:p@db/dagster", 1, "127.0.0.1", 4000)
