"""The worker's quota counters, on the worker's registry (served on its /metrics)."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge


class QuotaMetrics:
    def __init__(self, registry: CollectorRegistry, quotas_in_force: Callable[[], int]) -> None:
        self.crossings = Counter(
            "tokenops_worker_quota_crossings_total",
            "Quota threshold crossings published to the quota-alerts topic.",
            registry=registry,
        )
        self.replayed = Counter(
            "tokenops_worker_quota_crossings_replayed_total",
            "Crossings decided again after a crash and not published twice.",
            registry=registry,
        )
        self.late_ignored = Counter(
            "tokenops_worker_quota_late_ignored_total",
            "Events too late for their quota period's state (past its late horizon).",
            registry=registry,
        )
        quotas = Gauge(
            "tokenops_worker_quotas", "Quotas in force (from the quota topic).", registry=registry
        )
        quotas.set_function(lambda: float(quotas_in_force()))
