"""Prometheus sink under tenant churn: scrape time and memory, next to prometheus_client's own.

`python -m bench.bench_prometheus_scrape [tenants] [max_tenants]` (default 100,000 and
500; `python -m bench --only scrape` runs it too). Both get the same window records, as
the sink reads them on start: the aggregates topic replayed (two windows of each tenant,
three models, one correction in ten), then live windows of as many new tenants again
(churn). In the same run and on the same records:
- baseline: prometheus_client's labelled `Counter`s used as its documentation shows
  (`labels(tenant, model, token_type).inc(n)`), every tenant a label set for good, a
  correction counted as its difference to the window's last revision (kept per window);
- bounded: `tokenops.sinks.prometheus.state` (label cap, `other`, bounded memory), which
  between the two phases also ends its bootstrap as the sink does.
A scrape is `generate_latest` of a registry holding only the measured metrics (for the
sink, its collector: the work done under its lock); the figure is the median of five, or
of fewer when the scrapes take over 20 s in all (`scrape_s`).
Memory is what `tracemalloc` sees held after the run (in a second pass, as tracing slows
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

from prometheus_client import CollectorRegistry, Counter, generate_latest

from tests.harness.windows import window_totals
from tokenops.schemas.aggregates import TOKEN_TYPES, WindowTotals
from tokenops.sinks.prometheus.collector import StateCollector
from tokenops.sinks.prometheus.state import ExporterState

T0 = 1_795_737_600_000  # 2026-11-27 00:00 UTC
MINUTE = 60_000
MODELS = ("m-small", "m-large", "m-code")


class ClientCounters:
    """The baseline: prometheus_client's labelled Counters, as its docs use them."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.tokens = Counter(
            "tokenops_tokens",
            "Tokens counted in closed windows (latest revision), by type.",
            ["tenant", "model", "token_type"],
            registry=self.registry,
        )
        self.events = Counter(
            "tokenops_events",
            "Events in closed windows.",
            ["tenant", "model"],
            registry=self.registry,
        )
        # (tenant, model, window start, size) -> (revision, events, tokens by type)
        self.last: dict[tuple[str, str, int, int], tuple[int, int, tuple[int, ...]]] = {}

    def on_window(self, totals: WindowTotals) -> None:
        key = (totals.tenant_id, totals.model, totals.window_start_ms, totals.window_size_s)
        tokens = tuple(getattr(totals, name) for name in TOKEN_TYPES)
        revision, events, before = self.last.get(key, (0, 0, (0,) * len(TOKEN_TYPES)))
        if totals.revision <= revision:
            return
        self.last[key] = (totals.revision, totals.event_count, tokens)
        for name, new, old in zip(TOKEN_TYPES, tokens, before, strict=True):
            if new > old:  # a counter cannot go down: a lowered correction is not shown
                self.tokens.labels(totals.tenant_id, totals.model, name).inc(new - old)
        if totals.event_count > events:
            self.events.labels(totals.tenant_id, totals.model).inc(totals.event_count - events)


def bounded(cap: int) -> ExporterState:
    return ExporterState(max_tenants=cap, bootstrapping=True)


def sink_registry(state: ExporterState) -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(StateCollector(state, threading.Lock(), dict, lambda: True))
    return registry


# name -> (make one with the label cap, its registry to scrape)
STATES: dict[str, tuple[Callable[[int], Any], Callable[[Any], CollectorRegistry]]] = {
    "baseline (prometheus_client Counters)": (
        lambda cap: ClientCounters(),
        lambda counters: counters.registry,
    ),
    "bounded (tokenops)": (bounded, sink_registry),
}


def windows(first: int, tenants: int, start_ms: int) -> Iterator[WindowTotals]:
    for i in range(first, first + tenants):
        for w in range(2):
            window_start = start_ms + (i % 30 + w) * MINUTE
            tokens = 100 + (i * 7919) % 100_000  # a spread of tenant sizes
            revisions = (1, 2) if i % 10 == 0 and w == 0 else (1,)
            for revision in revisions:
                yield window_totals(
                    f"tenant-{i:06d}",
                    MODELS[(i + w) % len(MODELS)],
                    window_start,
                    input_tokens=tokens * revision,
                    output_tokens=tokens // 3,
                    revision=revision,
                    events=revision,
                )


def churn(state: Any, tenants: int) -> None:
    for totals in windows(0, tenants, T0):
        state.on_window(totals)
    if isinstance(state, ExporterState):
        state.close_delays_s.clear()  # the sink drains these into its histogram
        state.evict()
        state.finish_bootstrap()
    for totals in windows(tenants, tenants, T0 + 60 * MINUTE):
        state.on_window(totals)
    if isinstance(state, ExporterState):
        state.close_delays_s.clear()


def scrape_s(registry: CollectorRegistry, budget_s: float = 20.0) -> tuple[float, int]:
    """Median of five scrapes, or of as many as fit in `budget_s` (at least one): the
    baseline's scrape at 100k tenants takes tens of seconds, and five of them would make
    this the longest phase of `make bench` while adding nothing a slow figure needs."""
    times: list[float] = []
    size = 0
    while len(times) < 5 and (not times or sum(times) < budget_s):
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
    for name, (make, registry) in STATES.items():
        state = make(cap)
        start = time.perf_counter()
        churn(state, tenants)
        ingest_s = time.perf_counter() - start
        scrape, size = scrape_s(registry(state))
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
    print("| state | scrape, median of up to 5 | scrape size | held by the state | ingest |")
    print("| --- | --- | --- | --- | --- |")
    for name, r in results.items():
        print(
            f"| {name} | {r['scrape_s']:.3f} s | {r['scrape_bytes'] / 1024:,.0f} KiB"
            f" | {r['held_mb']:,.1f} MiB | {r['ingest_s']:.1f} s |"
        )


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:]))
