"""QuotaEvaluator with explicit timestamps: crossings exactly once, whatever the order."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from tests.oracles.quota_per_event import records
from tokenops.quotas.book import QuotaBook
from tokenops.quotas.evaluator import WATERMARK_KEY, QuotaEvaluator
from tokenops.schemas.quota import QuotaDefinition

DAY0 = int(datetime(2026, 11, 27, tzinfo=UTC).timestamp() * 1000)
HOUR = 3_600_000


@dataclass(frozen=True)
class Event:
    tenant_id: str
    time_ms: int
    input_tokens: int = 0
    output_tokens: int = 0
    model: str = "m1"
    cache_read_input_tokens: int = 0
    cache_creation_input_tokens: int = 0
    reasoning_output_tokens: int = 0

    @property
    def time(self) -> datetime:
        return datetime.fromtimestamp(self.time_ms / 1000, tz=UTC)


def daily(limit: int = 1000, **extra: Any) -> QuotaDefinition:
    fields: dict[str, Any] = {"tenant_id": "acme", "name": "daily", "period": "day", **extra}
    return QuotaDefinition(limit=limit, **fields)


def evaluator(*quotas: QuotaDefinition) -> QuotaEvaluator:
    return QuotaEvaluator(QuotaBook(quotas or [daily()]))


def crossings(alerts: list[Any]) -> list[tuple[str, int, int]]:
    return [(a.quota, a.period_start_ms, a.threshold_pct) for a in alerts]


def test_each_threshold_is_emitted_once_with_the_event_that_crossed_it() -> None:
    ev = evaluator()
    alerts, _ = ev.apply(records([Event("acme", DAY0 + 1, 300, 100)]), now_ms=5)
    assert alerts == []
    alerts, _ = ev.apply(records([Event("acme", DAY0 + 2, 100), Event("acme", DAY0 + 3, 0, 350)]))
    assert crossings(alerts) == [("daily", DAY0, 50), ("daily", DAY0, 80)]
    assert alerts[1].usage == 850 and alerts[1].time_ms == DAY0 + 3
    assert alerts[1].key == f"acme|daily|{DAY0}|80"
    alerts, _ = ev.apply(records([Event("acme", DAY0 + 4, 150)]))
    assert crossings(alerts) == [("daily", DAY0, 100)]
    assert ev.apply(records([Event("acme", DAY0 + 5, 5000)]))[0] == []


def test_a_jump_past_several_thresholds_emits_each_once_in_order() -> None:
    alerts, _ = evaluator().apply(records([Event("acme", DAY0, 2000)]))
    assert [a.threshold_pct for a in alerts] == [50, 80, 100]


def test_a_new_day_starts_from_zero_and_alerts_again() -> None:
    ev = evaluator()
    ev.apply(records([Event("acme", DAY0, 900)]))
    alerts, _ = ev.apply(records([Event("acme", DAY0 + 24 * HOUR, 900)]))
    assert crossings(alerts) == [("daily", DAY0 + 24 * HOUR, 50), ("daily", DAY0 + 24 * HOUR, 80)]


def test_a_late_event_counts_in_its_own_period() -> None:
    ev = evaluator()
    ev.apply(records([Event("acme", DAY0 + 10 * HOUR, 700)]))
    ev.apply(records([Event("acme", DAY0 + 25 * HOUR, 10)]))  # the next day began
    alerts, _ = ev.apply(records([Event("acme", DAY0 + 11 * HOUR, 150)]))  # late, yesterday
    assert crossings(alerts) == [("daily", DAY0, 80)]


def test_events_beyond_the_late_horizon_never_alert_twice() -> None:
    ev = evaluator()
    ev.apply(records([Event("acme", DAY0, 1000)]))
    _, delta = ev.apply(records([Event("acme", DAY0 + 49 * HOUR, 1)]))
    assert delta[f"acme|daily|{DAY0}"] is None  # evicted
    alerts, _ = ev.apply(records([Event("acme", DAY0 + 1, 5000)]))
    assert alerts == [] and ev.stats["late_ignored"] == 1


def test_replay_from_saved_state_reproduces_no_crossing_twice() -> None:
    """A crash after a batch was committed: the replay of the next batch starts from it."""
    first = evaluator()
    _, delta = first.apply(records([Event("acme", DAY0, 600)]))
    saved = {k: v for k, v in json.loads(json.dumps(delta)).items() if v is not None}
    restarted = evaluator()
    restarted.load(saved)
    assert restarted.state() == first.state()
    batch = [Event("acme", DAY0 + 1, 300)]
    assert crossings(restarted.apply(records(batch))[0]) == [("daily", DAY0, 80)]
    assert crossings(first.apply(records(batch))[0]) == [("daily", DAY0, 80)]


def test_applying_the_delta_to_the_old_state_gives_the_new_state() -> None:
    ev = evaluator(daily(), daily(name="rate", period="minute", limit=100))
    state: dict[str, Any] = {}
    for i in range(30):
        _, delta = ev.apply(records([Event("acme", DAY0 + i * 20 * 60_000, 40)]))
        for key, value in delta.items():
            if value is None:
                state.pop(key, None)
            else:
                state[key] = value
    assert state == ev.state()
    assert state[WATERMARK_KEY]["time_ms"] == DAY0 + 29 * 20 * 60_000
    minute_cells = [k for k in state if k.startswith("acme|rate|")]
    assert len(minute_cells) == 1  # rate cells leave after 10 minutes


def test_model_scoped_quotas_and_token_types() -> None:
    quota = daily(100, name="m2-out", model="m2", token_types=("output_tokens",))
    ev = evaluator(quota)
    assert ev.apply(records([Event("acme", DAY0, 10_000, 10, model="m1")]))[0] == []
    assert ev.apply(records([Event("acme", DAY0, 10_000, 10, model="m2")]))[0] == []
    assert [
        a.threshold_pct for a in ev.apply(records([Event("acme", DAY0, 0, 40, model="m2")]))[0]
    ] == [50]


def test_other_tenants_and_zero_events_leave_no_state() -> None:
    ev = evaluator()
    _, delta = ev.apply(records([Event("other", DAY0, 5000), Event("acme", DAY0, 0, 0)]))
    assert set(delta) == {WATERMARK_KEY}


def test_cost_budget_in_decimal() -> None:
    budget = QuotaDefinition(
        tenant_id="acme",
        name="budget",
        period="month",
        limit=Decimal("10.00"),
        currency="USD",
        prices_per_million={"input_tokens": Decimal("3"), "output_tokens": Decimal("15")},
        thresholds_pct=(80, 100),
    )
    ev = evaluator(budget)
    alerts, delta = ev.apply(records([Event("acme", DAY0, 1_000_000, 300_000)]))  # 3 + 4.5 = 7.5
    assert alerts == []
    assert (
        delta[f"acme|budget|{int(datetime(2026, 11, 1, tzinfo=UTC).timestamp() * 1000)}"]["usage"]
        == "7.5"
    )
    alerts, _ = ev.apply(records([Event("acme", DAY0, 0, 40_000)]))  # + 0.6 = 8.1
    assert [(a.threshold_pct, a.usage, a.unit) for a in alerts] == [(80, Decimal("8.1"), "USD")]
    reloaded = evaluator(budget)
    reloaded.load(ev.state())
    assert reloaded.state() == ev.state()


def test_day_periods_follow_the_tenants_timezone() -> None:
    ev = evaluator(daily(timezone="America/New_York"))
    # 2026-11-27 03:00 UTC is still 26 Nov in New York (UTC-5): two different local days.
    alerts, _ = ev.apply(records([Event("acme", DAY0 + 3 * HOUR, 600)]))
    assert crossings(alerts) == [("daily", DAY0 - 19 * HOUR, 50)]
    alerts, _ = ev.apply(records([Event("acme", DAY0 + 6 * HOUR, 600)]))
    assert crossings(alerts) == [("daily", DAY0 + 5 * HOUR, 50)]
    alerts, _ = ev.apply(records([Event("acme", DAY0 + 7 * HOUR, 300)]))
    assert crossings(alerts) == [("daily", DAY0 + 5 * HOUR, 80)]


def test_a_lowered_limit_applies_from_the_next_event() -> None:
    book = QuotaBook([daily(1000)])
    ev = QuotaEvaluator(book)
    ev.apply(records([Event("acme", DAY0, 600)]))  # 50 % crossed
    book.put(daily(700))
    alerts, _ = ev.apply(records([Event("acme", DAY0, 1)]))
    assert [a.threshold_pct for a in alerts] == [80]


@pytest.mark.parametrize("order", ["sorted", "reversed"])
def test_the_set_of_crossings_does_not_depend_on_arrival_order(order: str) -> None:
    events = [Event("acme", DAY0 + i * 1000, 45) for i in range(30)]
    if order == "reversed":
        events.reverse()
    alerts, _ = evaluator().apply(records(events))
    assert [a.threshold_pct for a in alerts] == [50, 80, 100]


def test_single_token_type_and_zero_priced_budgets() -> None:
    only_output = daily(100, name="out", token_types=("output_tokens",))
    free = QuotaDefinition(
        tenant_id="acme",
        name="free",
        period="day",
        limit=Decimal(1),
        currency="USD",
        prices_per_million={"input_tokens": Decimal(0)},
    )
    alerts, _ = evaluator(only_output, free).apply(records([Event("acme", DAY0, 10**6, 60)]))
    assert [(a.quota, a.threshold_pct) for a in alerts] == [("out", 50)]
