"""The metric families of the Prometheus sink, read from `ExporterState` at scrape time.

Names follow Prometheus conventions: counters end in `_total`, units are in the name
(`_seconds`, `_records`), ratios are 0..1. Token and event counters carry `tenant` and
`model` (bounded, see `PrometheusSinkSettings`); quota gauges carry `tenant`, `quota`
and `period` (minute, day or month), and the threshold gauge also `threshold_pct`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from tokenops.sinks.prometheus.state import ExporterState

# Every metric the exporter exposes, for the dashboard and rule tests to check against.
METRIC_NAMES = (
    "tokenops_tokens_total",
    "tokenops_events_total",
    "tokenops_quota_usage_ratio",
    "tokenops_quota_limit",
    "tokenops_quota_threshold_ratio",
    "tokenops_quota_period_end_timestamp_seconds",
    "tokenops_consumer_lag_records",
    "tokenops_dead_letter_records_total",
    "tokenops_window_corrections_total",
    "tokenops_window_close_delay_seconds",
    "tokenops_last_event_timestamp_seconds",
    "tokenops_prometheus_sink_errors_total",
    "tokenops_prometheus_sink_collapsed_tenants",
    "tokenops_prometheus_sink_tenant_limit",
    "tokenops_prometheus_sink_uncounted_corrections_total",
    "tokenops_prometheus_sink_ready",
)


class StateCollector(Collector):
    """Yields the state's metrics; holds `lock` while reading so values are consistent."""

    def __init__(
        self,
        state: ExporterState,
        lock: threading.Lock,
        lag: Callable[[], dict[tuple[str, str, int], int]],
        ready: Callable[[], bool],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.state, self.lock, self.lag, self.ready, self.clock = state, lock, lag, ready, clock

    def collect(self) -> Iterator[Metric]:
        with self.lock:
            yield from self._token_metrics()
            yield from self._quota_metrics()
            yield from self._health_metrics()
        lag = GaugeMetricFamily(
            "tokenops_consumer_lag_records",
            "Records of the usage topic not yet committed by the worker's consumer group.",
            labels=["group", "topic", "partition"],
        )
        for (group, topic, partition), value in sorted(self.lag().items()):
            lag.add_metric([group, topic, str(partition)], value)
        yield lag
        yield GaugeMetricFamily(
            "tokenops_prometheus_sink_ready",
            "1 once the sink has read every topic to its end since it started.",
            value=1.0 if self.ready() else 0.0,
        )

    def _token_metrics(self) -> Iterator[Metric]:
        tokens = CounterMetricFamily(
            "tokenops_tokens",
            "Tokens counted in closed windows (latest revision), by type.",
            labels=["tenant", "model", "token_type"],
        )
        for (tenant, model, token_type), value in sorted(self.state.labelled_tokens().items()):
            tokens.add_metric([tenant, model, token_type], value)
        events = CounterMetricFamily(
            "tokenops_events",
            "Usage events counted in closed windows (after deduplication).",
            labels=["tenant", "model"],
        )
        for (tenant, model), value in sorted(self.state.labelled_events().items()):
            events.add_metric([tenant, model], value)
        yield tokens
        yield events

    def _quota_metrics(self) -> Iterator[Metric]:
        labels = ["tenant", "quota", "period"]
        ratio = GaugeMetricFamily(
            "tokenops_quota_usage_ratio",
            "Usage of the current period divided by the quota's limit (1 = limit reached).",
            labels=labels,
        )
        limit = GaugeMetricFamily(
            "tokenops_quota_limit",
            "The quota's limit per period, in tokens (or currency units for a budget).",
            labels=labels,
        )
        end = GaugeMetricFamily(
            "tokenops_quota_period_end_timestamp_seconds",
            "When the quota's current period ends (for projections to the period's end).",
            labels=labels,
        )
        # One series per configured threshold, so alert rules compare the usage ratio with
        # the quota's own thresholds_pct (50/80/100 by default) instead of fixed ratios.
        threshold = GaugeMetricFamily(
            "tokenops_quota_threshold_ratio",
            "An alert threshold of the quota as a ratio of its limit (0.8 = 80 %).",
            labels=[*labels, "threshold_pct"],
        )
        for sample in self.state.quota_samples(int(self.clock() * 1000)):
            values = [sample.tenant, sample.quota, sample.period]
            ratio.add_metric(values, sample.usage_ratio)
            limit.add_metric(values, sample.limit)
            end.add_metric(values, sample.period_end_ms / 1000)
            for pct in sample.thresholds_pct:
                threshold.add_metric([*values, str(pct)], pct / 100)
        yield ratio
        yield limit
        yield end
        yield threshold

    def _health_metrics(self) -> Iterator[Metric]:
        state = self.state
        dead = CounterMetricFamily(
            "tokenops_dead_letter_records",
            "Records the worker dead-lettered, by offending field or rule (tokenops.dlq.field).",
            labels=["field"],
        )
        for field, value in sorted(state.dead_letters.items()):
            dead.add_metric([field], value)
        yield dead
        yield CounterMetricFamily(
            "tokenops_window_corrections",
            "Window revisions above 1: windows corrected by late events.",
            value=state.counts["corrections"],
        )
        yield CounterMetricFamily(
            "tokenops_prometheus_sink_uncounted_corrections",
            "Corrections of windows older than the correction horizon, not counted.",
            value=state.counts["uncounted_corrections"],
        )
        yield GaugeMetricFamily(
            "tokenops_last_event_timestamp_seconds",
            "Event time of the newest event in a closed window.",
            value=state.last_event_ms / 1000,
        )
        yield GaugeMetricFamily(
            "tokenops_prometheus_sink_collapsed_tenants",
            'Distinct tenants exported as tenant="other" because of the label limit.',
            value=state.collapsed_tenants,
        )
        yield GaugeMetricFamily(
            "tokenops_prometheus_sink_tenant_limit",
            "The most tenant label values exported (TOKENOPS_PROMETHEUS_SINK_MAX_TENANTS).",
            value=state.max_tenants,
        )
