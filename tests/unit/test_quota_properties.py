"""Property: however events are batched, reordered and replayed after crashes, the committed
batches emit each crossing exactly once, and exactly the crossings the totals imply."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.oracles.quota_per_event import records
from tests.unit.test_quota_evaluator import DAY0, HOUR, Event
from tokenops.quotas.book import QuotaBook
from tokenops.quotas.evaluator import QuotaEvaluator
from tokenops.schemas.quota import QuotaDefinition

LIMIT = 10_000
THRESHOLDS = (25, 50, 80, 100, 150)
BOOK = QuotaBook(
    [
        QuotaDefinition(
            tenant_id="acme", name="daily", period="day", limit=LIMIT, thresholds_pct=THRESHOLDS
        )
    ]
)

events = st.lists(
    st.builds(
        Event,
        tenant_id=st.just("acme"),
        time_ms=st.integers(DAY0, DAY0 + 47 * HOUR),  # two days, arriving in any order
        input_tokens=st.integers(0, 3000),
        output_tokens=st.integers(0, 1000),
    ),
    max_size=60,
)


@settings(max_examples=150, deadline=None)
@given(events, st.data())
def test_crossings_are_exactly_those_of_the_totals(batch: list[Event], data: Any) -> None:
    cuts = sorted(data.draw(st.sets(st.integers(0, len(batch)), max_size=8)))
    batches = [batch[a:b] for a, b in zip([0, *cuts], [*cuts, len(batch)], strict=True)]
    crashes = data.draw(st.lists(st.booleans(), min_size=len(batches), max_size=len(batches)))

    durable: dict[str, Any] = {}  # the state as the changelog holds it (JSON round trip)
    evaluator = QuotaEvaluator(BOOK)
    emitted: list[str] = []
    for part, crash in zip(batches, crashes, strict=True):
        if crash:  # the batch ran, its outputs may be lost or repeated, its delta was not kept
            evaluator.apply(records(part), now_ms=1)
            evaluator = QuotaEvaluator(BOOK)
            evaluator.load(durable)
        alerts, delta = evaluator.apply(records(part), now_ms=1)
        for key, value in json.loads(json.dumps(delta)).items():
            if value is None:
                durable.pop(key, None)
            else:
                durable[key] = value
        emitted.extend(alert.key for alert in alerts)

    totals: dict[int, int] = {}
    for event in batch:
        day = event.time_ms - (event.time_ms - DAY0) % (24 * HOUR)
        totals[day] = totals.get(day, 0) + event.input_tokens + event.output_tokens
    expected = {
        f"acme|daily|{day}|{pct}"
        for day, used in totals.items()
        for pct in THRESHOLDS
        if used * 100 >= LIMIT * pct
    }
    assert sorted(emitted) == sorted(expected)
