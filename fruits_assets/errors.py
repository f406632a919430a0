"""Expected mistakes (a bad setting, no images, a missing upstream, a typo in the run config) end
in one line that names the cause and the fix, printed last by the process.

Three pieces make that true with the `dagster` CLI: :func:`expected_error` records the line and
prints it at exit; the code location's console logger (``defs/console.py``) leaves out the
failure events and traces of a recorded mistake; :func:`install_cli_hooks` turns a run config
that Dagster itself refuses (an unknown field) into one line, and keeps Dagster's closing
"Error: Materialization failed." from standing between the run header and that line.
"""

from __future__ import annotations

import atexit
import multiprocessing
import sys
from typing import Any

_LAST_WORDS: list[str] = []
PREFIX = "fruits-assets: error: "


def _print_last_words() -> None:
    # A step process of the multiprocess executor shares the CLI's terminal: the CLI process
    # prints the line (it learns it from the step's failure event), the step process stays quiet.
    if _LAST_WORDS and multiprocessing.parent_process() is None:
        print(f"{PREFIX}{_LAST_WORDS[-1]}", file=sys.stderr, flush=True)


def expected_error(exc: Exception) -> Exception:
    """Mark ``exc`` as an expected mistake (bad setting, missing images): its one-line message is
    the last line the process prints, so a user of the `dagster` CLI finds it without reading a
    trace. Returns ``exc`` to raise it."""
    if not _LAST_WORDS:
        atexit.register(_print_last_words)
    _LAST_WORDS.append(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
    return exc


# Expected mistakes raised in another process (a step of the multiprocess executor, an EMR step)
# reach this one as serialized errors: known by their class names.
EXPECTED_CLASS_NAMES = ("ExpectedFailure", "SettingsError")


def remember(line: str) -> None:
    """Record the one line of a mistake raised elsewhere (printed at exit, once)."""
    if line not in _LAST_WORDS:
        expected_error(Exception(line))


def recorded() -> list[str]:
    """The expected mistakes recorded in this process, oldest first."""
    return list(_LAST_WORDS)


def config_error_line(exc: Any, allowed: dict[str, list[str]]) -> str:
    """One line for Dagster's DagsterInvalidConfigError: where, what, and the fields allowed there."""
    first = exc.errors[0]
    path = ".".join(p for p in first.stack.levels) if getattr(first, "stack", None) else ""
    data = getattr(first, "error_data", None)
    field = getattr(data, "field_name", None) or next(iter(getattr(data, "field_names", []) or []), None)
    op = path.split(".")[1] if path.startswith("ops.") and path.count(".") >= 1 else None
    fields = allowed.get(op or "", [])
    where = path or "run config"
    if field is not None and fields:
        return f"run config {where}: unknown field {field!r}; allowed: {', '.join(fields)}"
    return f"run config {where}: {first.message.split(' Expected')[0]}"


def _setting_error_in(exc: BaseException | None) -> Exception | None:
    """The SettingsError that caused ``exc`` (Dagster wraps what a code location raises), if any."""
    from .settings import SettingsError

    seen = 0
    while exc is not None and seen < 20:
        if isinstance(exc, SettingsError):
            return exc
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return None


def install_cli_hooks(allowed_config: dict[str, list[str]]) -> None:
    """For a process that imports the code location (the `dagster` CLI among them)."""
    previous = sys.excepthook

    def hook(kind, value, traceback):
        if kind.__name__ == "DagsterInvalidConfigError" and getattr(value, "errors", None):
            print(f"{PREFIX}{config_error_line(value, allowed_config)}", file=sys.stderr, flush=True)
            return
        setting = _setting_error_in(value)
        if setting is not None:  # e.g. a bad FRUITS_SPARK_MASTER while Dagster loads the code location
            if not _LAST_WORDS:
                expected_error(setting)  # printed at exit, once
            return
        previous(kind, value, traceback)

    sys.excepthook = hook
    try:
        import click
    except ImportError:  # pragma: no cover - click comes with dagster
        return
    show = click.ClickException.show
    if getattr(show, "_fruits_assets", False):
        return

    def quiet_show(self, file=None):
        # A recorded mistake is printed at exit, in one line: Dagster's generic closing line
        # ("Materialization failed.") would only stand between the run header and it.
        if _LAST_WORDS and self.format_message() == "Materialization failed.":
            return
        show(self, file)

    quiet_show._fruits_assets = True  # type: ignore[attr-defined]
    click.ClickException.show = quiet_show  # type: ignore[method-assign]
