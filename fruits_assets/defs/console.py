"""The console logger of the code location: Dagster's own format and level, except that the
failure events of an expected mistake (see errors.py) are left out: their one-line cause and fix
is printed last, and a stack trace above it would only hide it."""

import logging

from dagster import Field, InitLoggerContext, logger
from dagster._utils.log import create_console_logger

from ..errors import recorded

FAILURE_EVENTS = {"STEP_FAILURE", "RUN_FAILURE", "ENGINE_EVENT", "LOADED_INPUT", "RESOURCE_INIT_FAILURE"}


class ExpectedFailuresLeftOut(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        mistakes = recorded()
        if not mistakes:
            return True
        meta = getattr(record, "dagster_meta", None) or {}
        event = meta.get("dagster_event") if isinstance(meta, dict) else None
        text = record.getMessage()
        if event is not None and event.event_type_value in FAILURE_EVENTS and any(m in text for m in mistakes):
            return False
        # Dagster's plain messages about the same failure ("Execution of run ... failed", the
        # step's "Finished execution ... with failure") carry the mistake's text too.
        return not any(m in text for m in mistakes)


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
