"""Quota evaluation cost per event, next to a bare per-tenant token sum in the same run.

`python -m bench.bench_quota_evaluator [events] [tenants]`: each tenant has a daily quota, a
per-minute rate quota and a monthly budget in a timezone; events are spread over an hour.
The baseline sums the same tokens into a dict keyed by tenant: the floor any per-event
evaluation in Python pays. Rates are per second of this process's CPU time, which the
other processes of a busy machine disturb less than wall-clock time.
"""

from __future__ import annotations

import random
import sys
import time
from dataclasses import dataclass
from decimal import Decimal

from tokenops.schemas.quota import QuotaDefinition
from tokenops.streams.quota_book import QuotaBook
from tokenops.streams.quotas import QuotaEvaluator

T0 = 1_795_737_600_000  # 2026-11-27 00:00 UTC


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


def main(n: int = 200_000, tenants: int = 1000) -> None:
    rng = random.Random(7)
    events = [
        Event(
            f"tenant-{rng.randrange(tenants):05d}",
            "m1",
            T0 + i * 18,
            rng.randrange(4000),
            rng.randrange(800),
        )
        for i in range(n)
    ]
    batches = [events[i : i + 2000] for i in range(0, n, 2000)]

    start = time.process_time()
    totals: dict[str, int] = {}
    for batch in batches:
        for e in batch:
            totals[e.tenant_id] = totals.get(e.tenant_id, 0) + e.input_tokens + e.output_tokens
    baseline = n / (time.process_time() - start)

    evaluator = QuotaEvaluator(quotas(tenants))
    rates = []
    for shift in (0, 3_600_000):  # the first hour compiles each quota once; then steady
        shifted = [
            [
                Event(e.tenant_id, e.model, e.time_ms + shift, e.input_tokens, e.output_tokens)
                for e in b
            ]
            for b in batches
        ]
        start = time.process_time()
        alerts = 0
        for batch in shifted:
            found, _ = evaluator.apply(batch, now_ms=0)
            alerts += len(found)
        rates.append(n / (time.process_time() - start))
    first, rate = rates
    print(f"events={n} tenants={tenants} quotas/tenant=3 batch=2000")
    print(f"baseline dict sum        {baseline:12,.0f} events/s")
    print(f"QuotaEvaluator, 1st pass {first:12,.0f} events/s  (compiles every quota)")
    print(f"QuotaEvaluator.apply     {rate:12,.0f} events/s  ({alerts} alerts)")
    print(f"evaluator cost per event {1e6 / rate:8.2f} us (baseline {1e6 / baseline:.2f} us)")


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:3]))
