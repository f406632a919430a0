"""Reuse or compute, once for every asset that stages parts: compare the key of this run's inputs
with the key stored beside the published version; equal keys carry the published parts over byte
for byte, otherwise ``compute`` writes new ones. Either way the key is stored with the new parts,
and a failure discards everything staged."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..storage.parts import carry_parts
from ..storage.sidecars import read_info, write_info
from .resources import PublishedOutputs, StagingArea


@dataclass(frozen=True)
class Staged:
    uri: str  # the staged folder, handed to the IO manager
    reused: bool
    info: dict  # the sidecar: the key plus what ``compute`` returned (or the previous one's)


def same_key(key: dict[str, str | None], previous: dict | None) -> bool:
    """Reusable only when every part of the key is known and equal to the previous one's."""
    return (
        previous is not None
        and all(v is not None for v in key.values())
        and all(previous.get(k) == v for k, v in key.items())
    )


def reuse_or_compute(
    asset: str,
    run_id: str,
    info_name: str,
    key: dict[str, str | None],
    compute: Callable[[str], dict],
    staging: StagingArea,
    published: PublishedOutputs,
) -> Staged:
    previous_uri = published.current_uri(asset)
    previous = read_info(previous_uri, info_name, published.location()) if previous_uri else None
    reused = same_key(key, previous)
    staged = staging.new_dir(asset, run_id)
    try:
        if reused:
            assert previous_uri is not None and previous is not None
            carry_parts(previous_uri, None, staged, staging.location())
            info = previous
        else:
            info = {**compute(staged), **key}
        # Both cases: carry_parts copies data parts only, and the next run looks for this file.
        write_info(staged, info_name, info, staging.location())
    except BaseException:
        staging.discard(staged)
        raise
    return Staged(staged, reused, info)
