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
class NewParts:
    """A step's change to its table: the files its tasks wrote under ``prefix`` (none when
    ``prefix`` is None: nothing changed), the committed files it removes, the version it planned
    from, and its record (keys, counts) for the commit. The IO manager commits it."""

    prefix: str | None
    columns: tuple[tuple[str, str], ...]  # (name, type) for the column schema metadata
    schema: object  # pyarrow.Schema of the table
    read_version: int | None
    removes: tuple = ()  # FileEntry of the read version
    info: dict = field(default_factory=dict)

    @property
    def changes(self) -> bool:
        return self.prefix is not None or bool(self.removes)


@dataclass(frozen=True)
class ParquetParts:
    """A committed table version handed to Spark tasks that read its files themselves (no JVM
    rows): the files from the log, the version, its record, and how tasks reach it."""

    uri: str
    files: tuple[str, ...]
    version: int = -1
    info: dict = field(default_factory=dict)
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
