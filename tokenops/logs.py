"""Logging set-up for entry points; library modules only call `logging.getLogger`.

Every line a tokenops process writes goes through Python logging in one format:
tokenops' own loggers, Faust and mode (`faust_logging_config`), and librdkafka, whose
clients get a `logger` in their configuration (`KafkaSettings.librdkafka`).
`TOKENOPS_LOG_FORMAT=json` makes each line one JSON object.
"""

from __future__ import annotations

import json
import logging
import logging.config
from datetime import UTC, datetime
from typing import Any

from tokenops.settings import LogSettings

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"

# The Kafka clients are chatty at INFO; their warnings still come through.
_NOISY = ("aiokafka", "faust", "mode", "kafka")


class JsonLineFormatter(logging.Formatter):
    """One JSON object per record: time (UTC, ISO 8601), level, logger, message, and
    the traceback as one string, so a line never spans two."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False, default=str)


def line_formatter(style: str) -> logging.Formatter:
    """The formatter for `TOKENOPS_LOG_FORMAT` (`text` or `json`)."""
    return JsonLineFormatter() if style == "json" else logging.Formatter(TEXT_FORMAT)


def configure_logging(settings: LogSettings | None = None) -> LogSettings:
    """Send every log line to stderr in the chosen format, at `TOKENOPS_LOG_LEVEL`."""
    settings = settings or LogSettings()
    logging.config.dictConfig(logging_config(settings))
    return settings


def logging_config(settings: LogSettings) -> dict[str, Any]:
    """The `logging.config.dictConfig` of every tokenops process. `faust.Worker` gets it
    too (`logging_config=`): without it, mode puts its own handler and format on the
    root logger when the worker starts."""
    quiet = logging.getLevelName(max(logging.getLevelName(settings.level), logging.WARNING))
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"tokenops": {"()": line_formatter, "style": settings.format}},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "formatter": "tokenops",
                "stream": "ext://sys.stderr",
            }
        },
        "loggers": {name: {"level": quiet} for name in _NOISY},
        "root": {"level": settings.level, "handlers": ["stderr"]},
    }
