"""Expected mistakes (a bad setting, no images, a missing upstream) end in one line that names the
cause and the fix, printed last by the process, after Dagster's own report of the failed run."""

from __future__ import annotations

import atexit
import sys

_LAST_WORDS: list[str] = []


def _print_last_words() -> None:
    if _LAST_WORDS:
        print(f"fruits-assets: error: {_LAST_WORDS[-1]}", file=sys.stderr)


def expected_error(exc: Exception) -> Exception:
    """Mark ``exc`` as an expected mistake (bad setting, missing images): besides Dagster's own
    report of the failed run, its one-line message is the last line the process prints, so a
    user of the `dagster` CLI finds it without reading a trace. Returns ``exc`` to raise it."""
    if not _LAST_WORDS:
        atexit.register(_print_last_words)
    _LAST_WORDS.append(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
    return exc
