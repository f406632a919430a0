"""Values passed between assets that are not tables."""

from __future__ import annotations

from dataclasses import dataclass, field


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
