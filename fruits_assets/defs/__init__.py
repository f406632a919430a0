"""Dagster wiring only: one module per stage (the assets), their checks, automation, resources,
the IO manager and run config. Everything here may import Dagster; nothing below ``fruits_assets``
outside this folder does (Spark workers import those).

The stage modules avoid ``from __future__ import annotations``: Dagster reads the config and
resource types of an asset from its annotations when the decorator runs."""
