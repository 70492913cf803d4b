"""The worker's counters, on a caller's registry, and its /metrics and /healthz server.

The counters prove that nothing is lost: every input record read for the first time is
counted, forwarded to its tenant's home partition (and counted there) or dead-lettered,

    records_total{outcome="counted"} + records_total{outcome="forwarded"}
        + records_total{outcome="dead_lettered"}
        == all records consumed (records_total{outcome="replayed"} were done before)

and every event of a counted record is either counted or a duplicate,
`events_total{outcome="counted"} + events_total{outcome="duplicate"}`.
A record forwarded in a bundle (`routing.py`) counts as a record where it was written
and again where its bundle is read: the bundle itself is no input record of its own, and
`forward_bundles_total` counts how many records carried the forwarded ones.
"""

from __future__ import annotations

import logging
import threading

from prometheus_client import CollectorRegistry, Counter, Gauge

from tokenops.deadletters import dead_letter_label
from tokenops.listen import Reply, Request, SafeHTTPServer, metrics_route, parse_allowed_hosts
from tokenops.streams.partition import BatchCounts

logger = logging.getLogger(__name__)


class WorkerMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry

        def counter(name: str, doc: str, *labels: str) -> Counter:
            return Counter(f"tokenops_worker_{name}", doc, labels, registry=registry)

        def gauge(name: str, doc: str) -> Gauge:
            return Gauge(f"tokenops_worker_{name}", doc, registry=registry)

        self.records = counter("records", "Input records by outcome.", "outcome")
        self.events = counter("events", "Events of counted records by outcome.", "outcome")
        self.dead_letters = counter(
            "dead_letters",
            "Dead-lettered records by offending field or rule (bounded: others are 'other').",
            "field",
        )
        self.late_events = counter("late_events", "Events whose window had closed.")
        self.corrections = counter(
            "corrections", "Corrected window totals emitted (revision > 1 or late first)."
        )
        self.windows_closed = counter("windows_closed", "Windows closed (revision 1).")
        self.gaps = counter(
            "offset_gaps", "Input records that did not follow the previous record's offset."
        )
        self.batches = counter("batches", "Batches made durable.")
        self.forward_bundles = counter(
            "forward_bundles", "Bundles produced to home partitions, each of forwarded records."
        )
        self.partitions = gauge("assigned_partitions", "Partitions owned.")
        self.open_windows = gauge("open_windows", "Open windows in memory.")
        self.watermark_lag = gauge(
            "watermark_lag_seconds", "Wall clock minus the lowest partition watermark."
        )

    def record(self, counts: BatchCounts) -> None:
        self.records.labels("counted").inc(counts.records - counts.dead_lettered - counts.forwarded)
        self.records.labels("forwarded").inc(counts.forwarded)
        self.records.labels("dead_lettered").inc(counts.dead_lettered)
        self.records.labels("replayed").inc(counts.skipped)
        self.events.labels("counted").inc(counts.counted)
        self.events.labels("duplicate").inc(counts.duplicates)
        for field in counts.dead_letter_fields:
            self.dead_letters.labels(dead_letter_label(field)).inc()
        self.late_events.inc(counts.late_events)
        self.corrections.inc(counts.corrections)
        self.windows_closed.inc(counts.windows_closed)
        self.gaps.inc(counts.gaps)
        self.forward_bundles.inc(counts.bundles)

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
    registry: CollectorRegistry,
    host: str,
    port: int,
    allowed_hosts: str,
    ready: threading.Event,
) -> SafeHTTPServer:
    """GET /metrics (Prometheus text) and /healthz (200 once the worker owns its state)."""

    def healthz(request: Request) -> Reply:
        return Reply(200, b"ok\n") if ready.is_set() else Reply(503, b"starting\n")

    routes = {"/metrics": metrics_route(registry), "/healthz": healthz}
    server = SafeHTTPServer(
        "worker-http", host, port, routes, allowed_hosts=parse_allowed_hosts(allowed_hosts)
    )
    server.start()
    return server
