"""The worker's counters, on a caller's registry, and its /metrics and /healthz server.

The counters prove that nothing is lost: every input record read for the first time is
counted, forwarded to its tenant's home partition (and counted there) or dead-lettered,

    records_total{outcome="counted"} + records_total{outcome="forwarded"}
        + records_total{outcome="dead_lettered"}
        == all records consumed (records_total{outcome="replayed"} were done before)

and every event of a counted record is either counted or a duplicate,
`events_total{outcome="counted"} + events_total{outcome="duplicate"}`.
"""

from __future__ import annotations

import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    generate_latest,
)

from tokenops.streams.partition import BatchCounts

logger = logging.getLogger(__name__)


class WorkerMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        p = "tokenops_worker_"
        self.records = Counter(
            f"{p}records", "Input records by outcome.", ["outcome"], registry=registry
        )
        self.events = Counter(
            f"{p}events", "Events of counted records by outcome.", ["outcome"], registry=registry
        )
        self.dead_letters = Counter(
            f"{p}dead_letters",
            "Dead-lettered records by offending field.",
            ["field"],
            registry=registry,
        )
        self.late_events = Counter(
            f"{p}late_events", "Events whose window had closed.", registry=registry
        )
        self.corrections = Counter(
            f"{p}corrections",
            "Corrected window totals emitted (revision > 1 or late first).",
            registry=registry,
        )
        self.windows_closed = Counter(
            f"{p}windows_closed", "Windows closed (revision 1).", registry=registry
        )
        self.gaps = Counter(
            f"{p}offset_gaps",
            "Input records that did not follow the previous record's offset.",
            registry=registry,
        )
        self.batches = Counter(f"{p}batches", "Batches made durable.", registry=registry)
        self.partitions = Gauge(f"{p}assigned_partitions", "Partitions owned.", registry=registry)
        self.open_windows = Gauge(f"{p}open_windows", "Open windows in memory.", registry=registry)
        self.watermark_lag = Gauge(
            f"{p}watermark_lag_seconds",
            "Wall clock minus the lowest partition watermark.",
            registry=registry,
        )

    def record(self, counts: BatchCounts) -> None:
        self.records.labels("counted").inc(counts.records - counts.dead_lettered - counts.forwarded)
        self.records.labels("forwarded").inc(counts.forwarded)
        self.records.labels("dead_lettered").inc(counts.dead_lettered)
        self.records.labels("replayed").inc(counts.skipped)
        self.events.labels("counted").inc(counts.counted)
        self.events.labels("duplicate").inc(counts.duplicates)
        for field in counts.dead_letter_fields:
            self.dead_letters.labels(field).inc()
        self.late_events.inc(counts.late_events)
        self.corrections.inc(counts.corrections)
        self.windows_closed.inc(counts.windows_closed)
        self.gaps.inc(counts.gaps)

    def summary(self) -> str:
        def v(name: str, **labels: str) -> int:
            return int(self.registry.get_sample_value(name, labels) or 0)

        p = "tokenops_worker_"
        return (
            f"records_counted={v(p + 'records_total', outcome='counted')} "
            f"forwarded={v(p + 'records_total', outcome='forwarded')} "
            f"dead_lettered={v(p + 'records_total', outcome='dead_lettered')} "
            f"replayed={v(p + 'records_total', outcome='replayed')} "
            f"events_counted={v(p + 'events_total', outcome='counted')} "
            f"duplicates={v(p + 'events_total', outcome='duplicate')} "
            f"late_events={v(p + 'late_events_total')} corrections={v(p + 'corrections_total')} "
            f"windows_closed={v(p + 'windows_closed_total')}"
        )


def serve_http(
    registry: CollectorRegistry, port: int, ready: threading.Event
) -> ThreadingHTTPServer:
    """GET /metrics (Prometheus text) and /healthz (200 once the worker owns its state)."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.startswith("/metrics"):
                body, status, ctype = generate_latest(registry), 200, CONTENT_TYPE_LATEST
            elif self.path.startswith("/healthz"):
                ok = ready.is_set()
                body, status, ctype = (
                    (b"ok\n" if ok else b"starting\n"),
                    (200 if ok else 503),
                    "text/plain",
                )
            else:
                body, status, ctype = b"not found\n", 404, "text/plain"
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("0.0.0.0", port), Handler)
    threading.Thread(target=server.serve_forever, name="worker-http", daemon=True).start()
    logger.info("serving /metrics and /healthz port=%d", server.server_address[1])
    return server
