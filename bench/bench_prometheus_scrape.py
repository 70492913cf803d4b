"""Prometheus sink under tenant churn: scrape time and memory, bounded state next to the old one.

`python -m bench.bench_prometheus_scrape [tenants] [max_tenants]` (default 100,000 and
500; `python -m bench --only scrape` runs it too). Both states get the same window
records, as the sink reads them on start: the aggregates topic replayed (two windows of
each tenant, three models, one correction in ten), then `finish_bootstrap`, then live
windows of as many new tenants again (churn). In the same run and on the same records:
- baseline: `bench/prometheus_state_legacy.py`, the state before it was bounded (it kept
  every tenant and folded into `other` only when scraped);
- bounded: `tokenops.sinks.prometheus.state`.
A scrape is `generate_latest` of a registry holding only the sink's collector, the work
done under the sink's lock; the figure is the median of five. Memory is what
`tracemalloc` sees held by the state after the run (in a second pass, as tracing slows
the first). Numbers are reported, never judged.
"""

from __future__ import annotations

import gc
import statistics
import sys
import threading
import time
import tracemalloc
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest

from bench.prometheus_state_legacy import ExporterState as LegacyState
from tokenops.schemas.aggregates import WindowTotals
from tokenops.sinks.prometheus.collector import StateCollector
from tokenops.sinks.prometheus.state import ExporterState

T0 = 1_795_737_600_000  # 2026-11-27 00:00 UTC
MINUTE = 60_000
MODELS = ("m-small", "m-large", "m-code")
STATES: dict[str, Callable[[int], Any]] = {
    "baseline (unbounded, before)": lambda cap: LegacyState(max_tenants=cap, bootstrapping=True),
    "bounded (now)": lambda cap: ExporterState(max_tenants=cap, bootstrapping=True),
}


def windows(first: int, tenants: int, start_ms: int) -> Iterator[WindowTotals]:
    for i in range(first, first + tenants):
        for w in range(2):
            window_start = start_ms + (i % 30 + w) * MINUTE
            tokens = 100 + (i * 7919) % 100_000  # a spread of tenant sizes
            revisions = (1, 2) if i % 10 == 0 and w == 0 else (1,)
            for revision in revisions:
                yield WindowTotals(
                    tenant_id=f"tenant-{i:06d}",
                    model=MODELS[(i + w) % len(MODELS)],
                    window_start_ms=window_start,
                    window_size_s=60,
                    input_tokens=tokens * revision,
                    output_tokens=tokens // 3,
                    cache_read_input_tokens=0,
                    cache_creation_input_tokens=0,
                    reasoning_output_tokens=0,
                    event_count=revision,
                    first_event_time_ms=window_start,
                    last_event_time_ms=window_start + 1,
                    revision=revision,
                    emitted_at_ms=window_start + 95_000,
                )


def churn(state: Any, tenants: int) -> None:
    for totals in windows(0, tenants, T0):
        state.on_window(totals)
    state.close_delays_s.clear()  # the sink drains these into its histogram
    state.evict()
    state.finish_bootstrap()
    for totals in windows(tenants, tenants, T0 + 60 * MINUTE):
        state.on_window(totals)
    state.close_delays_s.clear()


def scrape_s(state: Any) -> tuple[float, int]:
    registry = CollectorRegistry()
    registry.register(StateCollector(state, threading.Lock(), dict, lambda: True))
    times, size = [], 0
    for _ in range(5):
        start = time.perf_counter()
        size = len(generate_latest(registry))
        times.append(time.perf_counter() - start)
    return statistics.median(times), size


def held_mb(make: Callable[[int], Any], tenants: int, cap: int) -> float:
    gc.collect()
    tracemalloc.start()
    try:
        state = make(cap)
        churn(state, tenants)
        gc.collect()
        return tracemalloc.get_traced_memory()[0] / 2**20
    finally:
        del state
        tracemalloc.stop()


def measure(tenants: int = 100_000, cap: int = 500) -> dict[str, dict[str, float]]:
    results: dict[str, dict[str, float]] = {}
    for name, make in STATES.items():
        state = make(cap)
        start = time.perf_counter()
        churn(state, tenants)
        ingest_s = time.perf_counter() - start
        scrape, size = scrape_s(state)
        del state
        results[name] = {
            "ingest_s": ingest_s,
            "scrape_s": scrape,
            "scrape_bytes": size,
            "held_mb": held_mb(make, tenants, cap),
        }
        print(f"  {name}: {results[name]}", flush=True)
    return results


def main(tenants: int = 100_000, cap: int = 500) -> None:
    print(f"tenants={tenants:,} (then {tenants:,} new ones live) max_tenants={cap}")
    results = measure(tenants, cap)
    print("| state | scrape, median of 5 | scrape size | held by the state | ingest |")
    print("| --- | --- | --- | --- | --- |")
    for name, r in results.items():
        print(
            f"| {name} | {r['scrape_s']:.3f} s | {r['scrape_bytes'] / 1024:,.0f} KiB"
            f" | {r['held_mb']:,.1f} MiB | {r['ingest_s']:.1f} s |"
        )


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:]))
