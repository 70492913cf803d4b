"""Logging set-up for entry points; library modules only call `logging.getLogger`."""

from __future__ import annotations

import logging
import os

_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"


def configure_logging(level: str | None = None) -> None:
    """Send tokenops' logs to stderr; `TOKENOPS_LOG_LEVEL` sets the level (default INFO)."""
    chosen = (level or os.environ.get("TOKENOPS_LOG_LEVEL") or "INFO").upper()
    logging.basicConfig(level=chosen, format=_FORMAT, force=True)
    # The Kafka clients are chatty at INFO; their warnings still come through.
    for noisy in ("aiokafka", "faust", "mode", "kafka"):
        logging.getLogger(noisy).setLevel(max(logging.getLevelName(chosen), logging.WARNING))
