"""The producer's Prometheus metrics, registered on the caller's registry."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge


class ProducerMetrics:
    """Counters are per event (a batch record of 500 adds 500); depth is read on scrape."""

    def __init__(self, registry: CollectorRegistry, depth: Callable[[], float]) -> None:
        self.sent = Counter(
            "tokenops_producer_events_sent_total",
            "Usage events acknowledged by the broker (acks=all).",
            registry=registry,
        )
        self.failed = Counter(
            "tokenops_producer_events_failed_total",
            "Usage events whose delivery failed (then spooled, never dropped), by error.",
            ["error"],
            registry=registry,
        )
        self.spooled = Counter(
            "tokenops_producer_events_spooled_total",
            "Usage events written to the durable local spool.",
            registry=registry,
        )
        self.replayed = Counter(
            "tokenops_producer_events_replayed_total",
            "Spooled usage events delivered after a restart.",
            registry=registry,
        )
        self.rejected = Counter(
            "tokenops_producer_events_rejected_total",
            "Invalid usage events refused at the call site (never sent).",
            registry=registry,
        )
        self.depth = Gauge(
            "tokenops_producer_queue_depth",
            "Usage events accepted but not yet acknowledged or spooled.",
            registry=registry,
        )
        self.depth.set_function(depth)
