"""A progress line every N seconds, and one line at a clean stop, for long-running services.

The figures come from the service's own metrics registry, so the log says what
/metrics says: `clickhouse sink progress rows=1200 batches=14 ...`, summed over labels.
"""

from __future__ import annotations

import logging
import threading
import time

from prometheus_client import CollectorRegistry

logger = logging.getLogger(__name__)


class ProgressLog:
    """Logs `<service> progress` every `every_s` from a thread until `stop()`.

    `figures` maps a short label to a metric sample name (e.g. `rows` ->
    `tokenops_clickhouse_sink_rows_total`); each figure is the sum over its labels.
    """

    def __init__(
        self, service: str, registry: CollectorRegistry, figures: dict[str, str], every_s: float
    ) -> None:
        self.service = service
        self.registry = registry
        self.figures = figures
        self.every_s = every_s
        self.started = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"{service}-progress", daemon=True)

    def start(self) -> ProgressLog:
        self._thread.start()
        return self

    def stop(self, reason: str) -> None:
        """Stop reporting and log the clean stop with the final figures."""
        self._stop.set()
        self._thread.join(timeout=5)
        uptime = time.monotonic() - self.started
        logger.info(
            "%s stopped cleanly reason=%s uptime_s=%.0f %s",
            self.service, reason, uptime, self.line(),
        )  # fmt: skip

    def line(self) -> str:
        totals = dict.fromkeys(self.figures.values(), 0.0)
        for family in self.registry.collect():
            for sample in family.samples:
                if sample.name in totals:
                    totals[sample.name] += sample.value
        return " ".join(f"{label}={totals[name]:.0f}" for label, name in self.figures.items())

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            logger.info("%s progress %s", self.service, self.line())
