"""The columnar quota evaluator gives exactly what the per-event evaluator gave.

Same alerts (in the same order, with the crossing event's time and the usage just after
it), same state deltas, same state and the same late-event counts, however events are
grouped into records and batches, with late events, evictions, several periods in one
record, model-scoped quotas, cost budgets, limit changes and reloads from saved state.
"""

from __future__ import annotations

import json
from dataclasses import fields
from decimal import Decimal
from itertools import pairwise
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.oracles.quota_per_event import PerEventEvaluator, records
from tests.unit.test_quota_evaluator import DAY0, HOUR, Event
from tokenops.quotas.book import QuotaBook
from tokenops.quotas.evaluator import QuotaEvaluator
from tokenops.schemas.columns import EventColumns, MixedColumns
from tokenops.schemas.quota import QuotaDefinition

TENANTS = ("acme", "beta", "idle")  # "idle" has no quota


def _quotas(limit: int) -> list[QuotaDefinition]:
    return [
        QuotaDefinition(
            tenant_id="acme",
            name="daily",
            period="day",
            limit=limit,
            thresholds_pct=(10, 50, 80, 100),
        ),
        QuotaDefinition(tenant_id="acme", name="rate", period="minute", limit=limit // 20),
        QuotaDefinition(
            tenant_id="acme",
            name="m2-out",
            period="day",
            model="m2",
            timezone="America/New_York",
            token_types=("output_tokens", "reasoning_output_tokens"),
            limit=limit // 4,
        ),
        QuotaDefinition(
            tenant_id="acme",
            name="budget",
            period="month",
            limit=Decimal("0.5"),
            currency="USD",
            timezone="Europe/Berlin",
            prices_per_million={
                "input_tokens": Decimal("3"),
                "output_tokens": Decimal("15.5"),
                "cache_read_input_tokens": Decimal("0.3"),
            },
            thresholds_pct=(25, 50, 100, 200),
        ),
        QuotaDefinition(
            tenant_id="beta", name="hourly-ish", period="minute", limit=limit // 50, model="m1"
        ),
        QuotaDefinition(
            tenant_id="beta",
            name="day-cost",
            period="day",
            limit=Decimal("0.05"),
            currency="EUR",
            prices_per_million={"output_tokens": Decimal("2"), "input_tokens": Decimal(0)},
        ),
    ]


@st.composite
def _event(draw: Any, start: int) -> Event:
    tokens = draw(st.sampled_from([0, 1, 7, 100, 999, 4000]))
    return Event(
        tenant_id=draw(st.sampled_from(TENANTS)),
        # Mostly near the stream's present, sometimes hours or days late.
        time_ms=start
        + draw(
            st.one_of(
                st.integers(0, 3 * 60_000),
                st.integers(-3 * HOUR, 3 * HOUR),
                st.integers(-50 * HOUR, 0),
            )
        ),
        input_tokens=tokens,
        output_tokens=draw(st.sampled_from([0, 3, 250, 1200])),
        cache_read_input_tokens=draw(st.sampled_from([0, 0, 50])),
        reasoning_output_tokens=draw(st.sampled_from([0, 0, 2])),
        model=draw(st.sampled_from(["m1", "m2"])),
    )


def _records(events: list[Event], cuts: set[int]) -> list[Any]:
    """Runs of one tenant, also cut at `cuts`: a tenant's events may span several records."""
    out: list[Any] = []
    begin = 0
    for i in range(1, len(events) + 1):
        if i == len(events) or i in cuts or events[i].tenant_id != events[begin].tenant_id:
            out.extend(records(events[begin:i]))
            begin = i
    return out


def _chunks(events: list[Event], cuts: set[int]) -> list[Any]:
    """The events as single-event records, decoded the way the worker decodes a fetch of
    them: chunks of many tenants (`MixedColumns`), cut at `cuts`."""
    out: list[Any] = []
    bounds = sorted({0, len(events), *cuts} & set(range(len(events) + 1)))
    for begin, end in pairwise(bounds):
        parts = [part for event in events[begin:end] for part in records([event])]
        names = [f.name for f in fields(EventColumns) if f.name not in ("tenant_id", "attributes")]
        columns = {name: [v for part in parts for v in getattr(part, name)] for name in names}
        tenants = [part.tenant_id for part in parts]
        out.append(MixedColumns(tenants, EventColumns(tenant_id="", **columns)))
    return out


def _apply(state: dict[str, Any], delta: dict[str, Any]) -> None:
    for key, value in json.loads(json.dumps(delta)).items():
        if value is None:
            state.pop(key, None)
        else:
            state[key] = value


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_columns_give_the_per_event_alerts_and_state(data: Any) -> None:
    limit = data.draw(st.sampled_from([2_000, 20_000, 200_000]))
    book = QuotaBook(_quotas(limit))
    late_horizon = data.draw(st.sampled_from([2 * HOUR, 24 * HOUR]))
    new = QuotaEvaluator(book, late_horizon_ms=late_horizon, rate_late_horizon_ms=120_000)
    old = PerEventEvaluator(book, late_horizon_ms=late_horizon, rate_late_horizon_ms=120_000)
    durable: dict[str, Any] = {}
    start = DAY0 + data.draw(st.integers(0, 48)) * HOUR - 30_000
    chunked = data.draw(st.booleans())  # single-event records, as the worker chunks them
    for batch_no in range(data.draw(st.integers(1, 5))):
        start += data.draw(st.sampled_from([0, 45_000, 20 * 60_000, 10 * HOUR]))
        events = data.draw(st.lists(_event(start), max_size=40))
        cuts = data.draw(st.sets(st.integers(1, max(1, len(events))), max_size=5))
        change = data.draw(st.sampled_from(["none", "none", "lower", "raise", "reload"]))
        if change == "lower":  # limits lowered below usage: the next adding event crosses
            for quota in _quotas(limit // 10):
                book.put(quota)
        elif change == "raise":
            for quota in _quotas(limit * 3):
                book.put(quota)
        elif change == "reload":  # a restart from the durable state
            new = QuotaEvaluator(book, late_horizon_ms=late_horizon, rate_late_horizon_ms=120_000)
            new.load(durable)
            old = PerEventEvaluator(
                book, late_horizon_ms=late_horizon, rate_late_horizon_ms=120_000
            )
            old.load(durable)
        now = 1_000 + batch_no
        packed = _chunks(events, cuts) if chunked else _records(events, cuts)
        got_alerts, got_delta = new.apply(packed, now_ms=now)
        want_alerts, want_delta = old.apply(events, now_ms=now)
        assert got_alerts == want_alerts
        assert got_delta == want_delta
        assert new.state() == old.state()
        assert new.stats == old.stats
        _apply(durable, got_delta)
        assert durable == json.loads(json.dumps(new.state()))


def test_a_record_crossing_thresholds_of_several_quotas_keeps_event_order() -> None:
    """Alerts follow the events, then the book's order of quotas, then thresholds."""
    book = QuotaBook(
        [
            QuotaDefinition(tenant_id="acme", name="daily", period="day", limit=1000),
            QuotaDefinition(tenant_id="acme", name="rate", period="minute", limit=200),
        ]
    )
    events = [
        Event("acme", DAY0 + 1, 50),
        Event("acme", DAY0 + 2, 60),
        Event("acme", DAY0 + 3, 500),
        Event("acme", DAY0 + 60_001, 250),  # the next minute
    ]
    alerts, _ = QuotaEvaluator(book).apply(records(events), now_ms=0)
    want, _ = PerEventEvaluator(book).apply(events, now_ms=0)
    assert alerts == want
    assert [(a.quota, a.threshold_pct, a.time_ms, a.usage) for a in alerts] == [
        ("rate", 50, DAY0 + 2, 110),
        ("daily", 50, DAY0 + 3, 610),
        ("rate", 80, DAY0 + 3, 610),
        ("rate", 100, DAY0 + 3, 610),
        ("daily", 80, DAY0 + 60_001, 860),
        ("rate", 50, DAY0 + 60_001, 250),
        ("rate", 80, DAY0 + 60_001, 250),
        ("rate", 100, DAY0 + 60_001, 250),
    ]


def test_the_watermark_moves_event_by_event_inside_a_record() -> None:
    """An event after a much later one in the same record is late; one before it is not."""
    book = QuotaBook([QuotaDefinition(tenant_id="acme", name="daily", period="day", limit=100)])
    events = [
        Event("acme", DAY0 + HOUR, 60),
        Event("acme", DAY0 + 30 * HOUR, 1),  # past yesterday's horizon of 2 h
        Event("acme", DAY0 + 2 * HOUR, 60),  # late: its day ended more than 2 h ago
    ]
    new = QuotaEvaluator(book, late_horizon_ms=2 * HOUR)
    old = PerEventEvaluator(book, late_horizon_ms=2 * HOUR)
    alerts, delta = new.apply(records(events), now_ms=0)
    assert (alerts, delta) == old.apply(events, now_ms=0)
    assert [a.threshold_pct for a in alerts] == [50]
    assert new.stats["late_ignored"] == 1


def test_a_quota_whose_period_changes_shares_a_cell_key_exactly_as_before() -> None:
    """On the 1st, a day quota turned monthly has the day cell's key but not its end."""
    first_of_month = DAY0 + 4 * 24 * HOUR  # 2026-12-01 00:00 UTC
    book = QuotaBook([QuotaDefinition(tenant_id="acme", name="q", period="day", limit=1000)])
    new = QuotaEvaluator(book, late_horizon_ms=HOUR)
    old = PerEventEvaluator(book, late_horizon_ms=HOUR)
    batches: list[list[Event] | str] = [
        [Event("acme", first_of_month + 5, 400)],
        "monthly",
        [Event("acme", first_of_month + 6, 200), Event("acme", first_of_month + 7, 100)],
        [Event("acme", first_of_month + 26 * HOUR, 100)],  # the day cell is evicted
        [Event("acme", first_of_month + 27 * HOUR, 300), Event("acme", first_of_month + 8, 1)],
    ]
    for batch in batches:
        if isinstance(batch, str):
            book.put(QuotaDefinition(tenant_id="acme", name="q", period="month", limit=1000))
            continue
        assert new.apply(records(batch), now_ms=0) == old.apply(batch, now_ms=0)
        assert new.state() == old.state() and new.stats == old.stats
