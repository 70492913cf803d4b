"""Quota evaluation cost per event: the columnar evaluator next to the per-event one it replaced.

`python -m bench.bench_quota_evaluator [events] [tenants] [events_per_record ...]`: each
tenant has a daily quota, a per-minute rate quota and a monthly budget in a timezone;
records hold `events_per_record` consecutive events of one tenant (as a producer's batch
record does), batches hold 2,000 events, events are spread over an hour. In the same
run and on the same events:
- baseline: the same tokens summed into a dict keyed by tenant, event by event: the floor
  any per-event evaluation in Python pays;
- per-event: the evaluator as it was before columns (`tests/oracles/quota_per_event.py`),
  fed the records' events one by one;
- columns: `QuotaEvaluator.apply` fed one `EventColumns` per record;
- no quotas: the columnar evaluator with an empty book (tenants without quotas).
The first hour compiles every quota; the figures are the median of three later hours.
The garbage collector runs with the worker's settings (`tokenops worker`: freeze, then
threshold 50,000): with the default, collections over 100,000 tenants' cells dominate.
Rates are per second of this process's CPU time, which the other processes of a busy
machine disturb less than wall-clock time.
"""

from __future__ import annotations

import gc
import random
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from tests.oracles.quota_per_event import PerEventEvaluator
from tokenops.quotas.book import QuotaBook
from tokenops.quotas.evaluator import QuotaEvaluator
from tokenops.schemas.columns import EventColumns
from tokenops.schemas.quota import QuotaDefinition

T0 = 1_795_737_600_000  # 2026-11-27 00:00 UTC
BATCH = 2000
HOUR = 3_600_000


@dataclass(frozen=True, slots=True)
class Event:
    tenant_id: str
    model: str
    time_ms: int
    input_tokens: int
    output_tokens: int
    cache_read_input_tokens: int = 0
    cache_creation_input_tokens: int = 0
    reasoning_output_tokens: int = 0


def quotas(tenants: int) -> QuotaBook:
    book = QuotaBook()
    for i in range(tenants):
        tenant = f"tenant-{i:05d}"
        book.put(QuotaDefinition(tenant_id=tenant, name="daily", period="day", limit=10**9))
        book.put(QuotaDefinition(tenant_id=tenant, name="tpm", period="minute", limit=10**7))
        book.put(
            QuotaDefinition(
                tenant_id=tenant,
                name="budget",
                period="month",
                limit=Decimal(5000),
                currency="USD",
                timezone="Europe/Berlin",
                prices_per_million={"input_tokens": Decimal(3), "output_tokens": Decimal(15)},
            )
        )
    return book


def _record(events: Sequence[Event]) -> EventColumns:
    n = len(events)
    none: list[str | None] = [None] * n
    return EventColumns(
        tenant_id=events[0].tenant_id,
        id=[str(i) for i in range(n)],
        source=["//bench"] * n,
        time_ms=[e.time_ms for e in events],
        model=[e.model for e in events],
        provider=["p"] * n,
        operation=["chat"] * n,
        input_tokens=[e.input_tokens for e in events],
        output_tokens=[e.output_tokens for e in events],
        cache_read_input_tokens=[0] * n,
        cache_creation_input_tokens=[0] * n,
        reasoning_output_tokens=[0] * n,
        project_id=none,
        agent_id=none[:],
        user_id=none[:],
        api_key_id=none[:],
        region=none[:],
        node_id=none[:],
    )


def workload(n: int, tenants: int, per_record: int, shift: int) -> list[list[list[Event]]]:
    """Batches of records of events (the same for every `shift` but their time)."""
    rng = random.Random(7)
    records: list[list[Event]] = []
    for first in range(0, n, per_record):
        tenant = f"tenant-{rng.randrange(tenants):05d}"
        records.append(
            [
                Event(tenant, "m1", T0 + shift + i * 18, rng.randrange(4000), rng.randrange(800))
                for i in range(first, min(n, first + per_record))
            ]
        )
    step = max(1, BATCH // per_record)
    return [records[i : i + step] for i in range(0, len(records), step)]


def _rate(n: int, run: Callable[[], int]) -> tuple[float, int]:
    start = time.process_time()
    alerts = run()
    return n / (time.process_time() - start), alerts


def measure(n: int, tenants: int, per_record: int) -> dict[str, Any]:
    book = quotas(tenants)
    old, new, empty = PerEventEvaluator(book), QuotaEvaluator(book), QuotaEvaluator(QuotaBook())
    rates: dict[str, list[float]] = {"per-event": [], "columns": [], "no quotas": []}
    alerts: dict[str, int] = {}
    for hour in range(4):  # hour 0 compiles every quota; hours 1 to 3 are steady
        batches = workload(n, tenants, per_record, hour * HOUR)
        flat = [[e for record in batch for e in record] for batch in batches]
        columns = [[_record(record) for record in batch] for batch in batches]

        def per_event(flat: list[list[Event]] = flat) -> int:
            return sum(len(old.apply(batch, now_ms=0)[0]) for batch in flat)

        def columnar(columns: list[list[EventColumns]] = columns) -> int:
            return sum(len(new.apply(batch, now_ms=0)[0]) for batch in columns)

        def no_quotas(columns: list[list[EventColumns]] = columns) -> int:
            return sum(len(empty.apply(batch, now_ms=0)[0]) for batch in columns)

        for name, run in (
            ("per-event", per_event),
            ("columns", columnar),
            ("no quotas", no_quotas),
        ):
            rate, found = _rate(n, run)
            if hour:
                rates[name].append(rate)
            alerts[name] = alerts.get(name, 0) + found
    assert alerts["per-event"] == alerts["columns"], alerts
    assert old.state() == new.state()
    return {name: statistics.median(values) for name, values in rates.items()} | {
        "alerts": alerts["columns"]
    }


def baseline(n: int, tenants: int) -> float:
    batches = workload(n, tenants, 1, 0)
    flat = [[e for record in batch for e in record] for batch in batches]
    start = time.process_time()
    totals: dict[str, int] = {}
    for batch in flat:
        for e in batch:
            totals[e.tenant_id] = totals.get(e.tenant_id, 0) + e.input_tokens + e.output_tokens
    return n / (time.process_time() - start)


def main(n: int = 200_000, tenants: int = 1000, *per_record: int) -> None:
    sizes = per_record or (1, 10, 100)
    gc.freeze()  # as `tokenops worker` does
    gc.set_threshold(50_000, 20, 100)
    print(f"events={n} tenants={tenants} quotas/tenant=3 batch={BATCH} (median of 3 hours)")
    print(f"baseline dict sum {baseline(n, tenants):12,.0f} events/s")
    print(
        "| events/record | per-event (before) | columns (after) | speed-up | us/event before"
        " -> after | no quotas |"
    )
    print("| --- | --- | --- | --- | --- | --- |")
    for size in sizes:
        r = measure(n, tenants, size)
        before, after = r["per-event"], r["columns"]
        print(
            f"| {size} | {before:,.0f} | {after:,.0f} | {after / before:.1f}x"
            f" | {1e6 / before:.2f} -> {1e6 / after:.2f} | {r['no quotas']:,.0f} |"
            f"  ({r['alerts']} alerts, identical)"
        )


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:]))
