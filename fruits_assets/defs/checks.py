"""Write-audit-publish: the blocking checks of an asset are evaluated before its output reaches the
IO manager, and a failed one stops the step with a one-line reason."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from dagster import AssetCheckResult, Failure


def audit_or_fail(
    asset: str, checks: list[AssetCheckResult], on_fail: Callable[[], None] | None = None
) -> Iterator[AssetCheckResult]:
    """The checks are emitted first (the UI shows each with its metadata); if a blocking one failed
    the step fails before its output reaches the IO manager, so nothing is published and readers
    keep the last good version."""
    failed = [c for c in checks if not c.passed]
    if failed and on_fail is not None:
        on_fail()
    yield from checks
    if not failed:
        return
    reasons = "; ".join(f"{c.check_name}: {c.description or dict(c.metadata)}" for c in failed)
    raise Failure(
        f"{asset} not committed: blocking check failed ({reasons})",
        metadata={"failed_checks": [c.check_name for c in failed]},
    )


def rounded(value: float | None, digits: int = 4) -> float | str:
    """Metadata of None would be an error: an undefined number is shown as "n/a"."""
    return "n/a" if value is None else round(float(value), digits)
