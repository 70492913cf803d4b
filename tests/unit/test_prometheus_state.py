"""The exporter's state and collector: counters from absolute revisions, bounded labels."""

from __future__ import annotations

import threading
import tracemalloc
from datetime import UTC, datetime
from decimal import Decimal

from prometheus_client import CollectorRegistry

from tests.harness.windows import window_totals
from tokenops.schemas.aggregates import WindowTotals
from tokenops.schemas.quota import QuotaAlert, QuotaDefinition
from tokenops.sinks.prometheus.collector import StateCollector
from tokenops.sinks.prometheus.state import (
    CANDIDATES_PER_LABEL,
    DEAD_LETTER_IDS,
    OTHER,
    OTHER_WINDOWS_PER_LABEL,
    ExporterState,
)

NOW = int(datetime(2026, 11, 27, 12, 0, 30, tzinfo=UTC).timestamp() * 1000)
MINUTE = 60_000


def totals(
    tenant: str, start: int, tokens: int, revision: int = 1, events: int = 1
) -> WindowTotals:
    return window_totals(tenant, "m1", start, input_tokens=tokens, revision=revision, events=events)


def registry_for(state: ExporterState) -> CollectorRegistry:
    registry = CollectorRegistry()
    collector = StateCollector(state, threading.Lock(), dict, lambda: True, lambda: NOW / 1000)
    registry.register(collector)
    return registry


def tokens(registry: CollectorRegistry, tenant: str) -> float | None:
    labels = {"tenant": tenant, "model": "m1", "token_type": "input_tokens"}
    return registry.get_sample_value("tokenops_tokens_total", labels)


def test_revisions_replace_and_replays_do_not_add() -> None:
    state = ExporterState()
    registry = registry_for(state)
    start = NOW - 10 * MINUTE
    for record in [totals("a", start, 100), totals("a", start, 100), totals("a", start, 150, 2, 2)]:
        state.on_window(record)
    state.on_window(totals("a", start, 100))  # an old revision, replayed
    assert tokens(registry, "a") == 150
    assert registry.get_sample_value("tokenops_events_total", {"tenant": "a", "model": "m1"}) == 2
    assert registry.get_sample_value("tokenops_window_corrections_total") == 1


def test_tenants_beyond_the_limit_become_other_and_are_counted() -> None:
    state = ExporterState(max_tenants=2)
    registry = registry_for(state)
    for i, tenant in enumerate(["a", "b", "c", "d", "c"]):
        state.on_window(totals(tenant, NOW - (i + 5) * MINUTE, 10))
    assert tokens(registry, "a") == 10 and tokens(registry, "b") == 10
    assert tokens(registry, "c") is None and tokens(registry, "other") == 30
    assert registry.get_sample_value("tokenops_prometheus_sink_collapsed_tenants") == 2
    assert registry.get_sample_value("tokenops_prometheus_sink_tenant_limit") == 2


def test_tenants_with_quotas_are_labelled_first() -> None:
    state = ExporterState(max_tenants=1)
    quota = QuotaDefinition(tenant_id="q", name="daily", period="day", limit=1000)
    state.on_quota(quota.key.encode(), quota.to_bytes())
    state.on_window(totals("a", NOW - 5 * MINUTE, 10))
    state.on_window(totals("q", NOW - 5 * MINUTE, 400))
    registry = registry_for(state)
    assert tokens(registry, "q") == 400 and tokens(registry, "other") == 10
    labels = {"tenant": "q", "quota": "daily", "period": "day"}
    assert registry.get_sample_value("tokenops_quota_usage_ratio", labels) == 0.4
    assert registry.get_sample_value("tokenops_quota_limit", labels) == 1000


def test_quota_ratio_counts_the_current_period_and_takes_alerts_at_once() -> None:
    state = ExporterState()
    day = QuotaDefinition(tenant_id="a", name="daily", period="day", limit=1000)
    rate = QuotaDefinition(tenant_id="a", name="tpm", period="minute", limit=100)
    for quota in (day, rate):
        state.on_quota(quota.key.encode(), quota.to_bytes())
    state.on_window(totals("a", NOW - 24 * 60 * MINUTE, 900))  # yesterday
    state.on_window(totals("a", NOW - 30 * MINUTE, 300))
    state.on_window(totals("a", NOW - MINUTE - 30_000, 150))  # the last closed minute
    registry = registry_for(state)

    def ratio(name: str, period: str) -> float | None:
        labels = {"tenant": "a", "quota": name, "period": period}
        return registry.get_sample_value("tokenops_quota_usage_ratio", labels)

    assert ratio("daily", "day") == 0.45 and ratio("tpm", "minute") == 1.5
    state.on_window(totals("a", NOW - 20 * MINUTE, 50))  # added to the summed period
    state.on_window(totals("a", NOW - 30 * MINUTE, 350, revision=2))  # a correction: +50
    assert ratio("daily", "day") == 0.55 and ratio("tpm", "minute") == 1.5
    start = NOW - NOW % (24 * 60 * MINUTE)
    alert = QuotaAlert(
        tenant_id="a",
        quota="daily",
        period="day",
        period_start_ms=start,
        period_end_ms=start + 24 * 60 * MINUTE,
        threshold_pct=80,
        usage=Decimal(820),
        limit=Decimal(1000),
        unit="tokens",
        time_ms=NOW,
        emitted_at_ms=NOW,
    )
    state.on_alert(alert)
    assert ratio("daily", "day") == 0.82
    state.on_quota(day.key.encode(), None)
    assert ratio("daily", "day") is None


def test_dead_letters_count_once_per_origin_with_bounded_fields() -> None:
    state = ExporterState()
    registry = registry_for(state)
    state.on_dead_letter("time", ("usage", "0", "5"))
    state.on_dead_letter("time", ("usage", "0", "5"))
    for i in range(30):
        state.on_dead_letter(f"field{i}", ("usage", "1", str(i)))
    dead = "tokenops_dead_letter_records_total"
    assert registry.get_sample_value(dead, {"field": "time"}) == 1
    assert registry.get_sample_value(dead, {"field": "other"}) == 30


def _churn(state: ExporterState, tenants: range, start: int) -> int:
    """Each tenant: two windows and a correction of one of them; returns tokens sent."""
    sent = 0
    for i in tenants:
        tokens = 1 + i % 97
        state.on_window(totals(f"t{i}", start, tokens))
        state.on_window(totals(f"t{i}", start + MINUTE, tokens))
        state.on_window(totals(f"t{i}", start, tokens + 5, revision=2, events=2))
        sent += 2 * tokens + 5
    state.close_delays_s.clear()  # the sink drains them into its histogram
    return sent


def _traced_bytes(tenants: int) -> int:
    tracemalloc.start()
    try:
        state = ExporterState(max_tenants=20, bootstrapping=True)
        _churn(state, range(tenants), NOW - 60 * MINUTE)
        state.finish_bootstrap()
        _churn(state, range(tenants, 2 * tenants), NOW - 30 * MINUTE)
        list(registry_for(state).collect())
        return tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()


def test_memory_stays_bounded_by_the_label_cap_under_tenant_churn() -> None:
    small, large = _traced_bytes(500), _traced_bytes(5_000)
    assert large < 1.5 * small, (small, large)  # 10 x the tenants, not 10 x the memory


def test_folded_tenants_keep_exact_totals_in_other_and_bounded_structures() -> None:
    state = ExporterState(max_tenants=10, bootstrapping=True)
    registry = registry_for(state)
    sent = _churn(state, range(1_000), NOW - 60 * MINUTE)
    state.on_window(totals("big", NOW - 50 * MINUTE, 10_000))  # the largest: labelled
    assert len(state._candidates) <= 2 * CANDIDATES_PER_LABEL * 10
    state.finish_bootstrap()
    sent += _churn(state, range(1_000, 3_000), NOW - 30 * MINUTE)
    labelled = state.labelled_tokens()
    assert {tenant for tenant, _, _ in labelled} - {OTHER} == state._tenants
    assert "big" in state._tenants and len(state._tenants) == 10
    assert sum(labelled.values()) == sent + 10_000  # corrections of folded windows: exact
    assert len(state._tokens) <= 11 and len(state._windows) <= 10 and len(state._buckets) <= 10
    assert len(state._other_windows) <= OTHER_WINDOWS_PER_LABEL * 10
    assert abs(state.collapsed_tenants - 2_991) < 0.05 * 2_991
    assert registry.get_sample_value("tokenops_prometheus_sink_collapsed_tenants") > 2_800
    for i in range(DEAD_LETTER_IDS + 10):
        state.on_dead_letter("time", ("usage", "0", str(i)))
    assert len(state._dead_letter_ids) == DEAD_LETTER_IDS
