"""The console logger of the code location: Dagster's own format and level, except that the
failure events of an expected mistake (see errors.py) are left out: their one-line cause and fix
is printed last, and a stack trace above it would only hide it."""

import logging

from dagster import Failure, Field, InitLoggerContext, logger
from dagster._utils.log import create_console_logger

from ..errors import EXPECTED_CLASS_NAMES, recorded, remember


class ExpectedFailure(Failure):
    """A step failure that is a user's mistake with a one-line cause and fix (raise it through
    ``errors.expected_error``): the console shows that line only, even from another process."""


def expected_line(event: object) -> str | None:
    """The one line of an expected mistake carried by a Dagster event's error, if any."""
    error = getattr(getattr(event, "event_specific_data", None), "error", None)
    depth = 0
    while error is not None and depth < 20:
        if error.cls_name in EXPECTED_CLASS_NAMES:
            message = error.message.strip().splitlines()[0]
            return message.split(": ", 1)[1] if ": " in message else message
        error, depth = error.cause or error.context, depth + 1
    return None


class ExpectedFailuresLeftOut(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        meta = getattr(record, "dagster_meta", None) or {}
        event = meta.get("dagster_event") if isinstance(meta, dict) else None
        line = expected_line(event) if event is not None else None
        if line is not None:
            remember(line)  # raised in a step's own process: this one prints it at exit
            return False
        mistakes = recorded()
        # Dagster's other messages about the same failure carry the mistake's text too.
        return not any(m in record.getMessage() for m in mistakes)


@logger(
    config_schema={
        "log_level": Field(str, is_required=False, default_value="INFO", description="The logger's threshold."),
        "name": Field(str, is_required=False, default_value="dagster", description="The name of your logger."),
    },
    description="Dagster's colored console logger, less the traces of expected mistakes.",
)
def console(init_context: InitLoggerContext) -> logging.Logger:
    log = create_console_logger(init_context.logger_config["name"], init_context.logger_config["log_level"].upper())
    for handler in log.handlers:
        handler.addFilter(ExpectedFailuresLeftOut())
    return log


def use_as_default() -> None:
    """Make this logger Dagster's default console logger in this process.

    Dagster instantiates the loggers a run config names; without a ``loggers`` section (a plain
    ``dagster asset materialize``, a launch from the UI) it falls back to its colored console
    logger, at the instance's ``python_logs.python_log_level`` (DEBUG when unset), and the
    Definitions' loggers are not used. Its fallback is swapped for this logger with the same
    config; the Dagster release is pinned (pyproject.toml), and a test runs the real CLI.
    """
    from dagster._core.execution import context_creation_job

    fallback = context_creation_job.default_system_loggers
    if getattr(fallback, "_fruits_assets", False):
        return

    def ours(instance):
        return [(console, config) for _, config in fallback(instance)]

    ours._fruits_assets = True  # type: ignore[attr-defined]
    context_creation_job.default_system_loggers = ours
