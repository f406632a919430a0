"""Values passed between assets that are not tables."""

from __future__ import annotations

from dataclasses import dataclass, field

from .fs import Location


@dataclass
class FeatureModelArtifact:
    """The converted LiteRT flatbuffer and where it came from (weights source, hashes, versions)."""

    model_bytes: bytes
    provenance: dict = field(default_factory=dict)

    @property
    def pretrained(self) -> bool:
        return bool(self.provenance.get("pretrained"))


@dataclass(frozen=True)
class StagedParquet:
    """Parquet parts that Spark tasks wrote themselves under ``uri`` (a staging folder); the IO
    manager moves them into the asset's new version and publishes it."""

    uri: str
    columns: tuple[tuple[str, str], ...] = ()  # (name, type) for the column schema metadata


@dataclass(frozen=True)
class ParquetParts:
    """A published parquet folder handed to Spark tasks that read its parts themselves (no JVM
    rows): its URI and how tasks reach it (endpoint and region passed explicitly)."""

    uri: str
    endpoint_url: str | None = None
    region: str | None = None

    def location(self) -> Location:
        return Location(self.endpoint_url, self.region)


@dataclass(frozen=True)
class ExecutedNotebook:
    """A notebook with its outputs (nbformat JSON), stored as ``report.ipynb``."""

    content: bytes


@dataclass(frozen=True)
class WithFigures:
    """An output plus PNG figures the IO manager writes beside it in the same version folder
    (``_figures/<name>``), so they open outside Dagster; readers load ``value`` alone."""

    value: object
    figures: dict = field(default_factory=dict)  # file name -> PNG bytes
