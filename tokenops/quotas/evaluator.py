"""Quota evaluation in the stream: usage per tenant, quota and period, and threshold crossings.

`QuotaEvaluator` is pure: no Kafka, no clock unless none is given. The worker owns one per
partition (through `quota_processor.py`), calls `load(state)` after recovering the
partition, then `apply(columns)` for each batch: one `EventColumns` per input record with
its accepted (fresh, valid) events, all of one tenant. It publishes the returned alerts,
then makes the returned state delta durable in the same changelog record as its other
state. After a crash the batch is replayed from that state, the same crossings are
decided again, and the processor leaves out those already published: each crossing is
published once per quota, period and threshold, under the key
`tenant|quota|period_start_ms|threshold_pct`.

State is a plain mapping `str -> dict` of JSON-safe values:
- `"<tenant>|<quota>|<period_start_ms>"` -> a quota cell (`cells.py`); its `usage` is a
  decimal string for cost budgets (`usage.py`);
- `"~watermark"` -> `{"time_ms": int, "applied_at_ms": int}`: the highest event time seen
  on the partition, and the wall-clock time of the batch that wrote the state (readers
  of the quota-alerts topic start there after a crash; it never affects evaluation).

An event counts in the period that holds its event time, also when it arrives late. A
period's cell is dropped once the watermark is `late_horizon_ms` past the period's end
(`rate_late_horizon_ms` for minute quotas); later events for it are counted in
`stats["late_ignored"]` and can no longer raise alerts, so an evicted cell is never
recreated to alert twice. The watermark advances event by event: an event is late when
its cell's horizon is below the highest event time up to and including it, in offset
order. Changes to the quota book apply from the next record on; thresholds already
crossed in a period stay crossed when a limit changes.

The result is defined event by event (the order of offsets, then each tenant's quotas in
book order, then thresholds ascending), but computed record by record: a record of a
tenant without quotas costs one dict lookup and a `max` of its times; otherwise each
quota's counter (`counter.py`, one per quota, owning its cursor) sums the record's usage
with C-level column sums, adds it to the cell under its cursor and compares the new usage
with its lowest threshold bound, once per record. Only when a threshold is crossed inside
a record does it look at single events (a cumulative sum) to find the event that crossed
it, whose time and usage the alert carries. Records spanning several periods of a quota,
holding other models than a model-scoped quota's, or reaching past a cell's late horizon
take the counter's exact slower path (`count_rows`).
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from decimal import Decimal
from itertools import compress, count
from operator import attrgetter, mul
from typing import Any, NamedTuple

from tokenops.quotas import usage as units
from tokenops.quotas.book import QuotaBook
from tokenops.quotas.cells import Cell, CellTable
from tokenops.quotas.counter import Crossing, QuotaCounter
from tokenops.schemas.columns import EventColumns, MixedColumns
from tokenops.schemas.quota import QuotaAlert, QuotaDefinition

WATERMARK_KEY = "~watermark"
_HOUR_MS = 3_600_000

_event_order = attrgetter("row", "quota", "threshold")


class QuotaEvaluator:
    """Usage and crossings of the quotas in `book`, for the tenants of one partition."""

    def __init__(
        self,
        book: QuotaBook,
        late_horizon_ms: int = 24 * _HOUR_MS,
        # Longer than the contract's 5 min future skew, so a skewed clock cannot evict
        # the current minute; minute cells are small and few.
        rate_late_horizon_ms: int = 10 * 60_000,
    ) -> None:
        self.book = book
        self.late_horizon_ms = late_horizon_ms
        self.rate_late_horizon_ms = rate_late_horizon_ms
        self.table = CellTable(late_horizon_ms, rate_late_horizon_ms)
        self.watermark_ms = 0
        self.applied_at_ms = 0
        # tenant -> (the book's quota tuple, its counters, whether any is model-scoped);
        # a new tuple means a change
        self._compiled: dict[
            str, tuple[tuple[QuotaDefinition, ...], tuple[QuotaCounter, ...], bool]
        ] = {}

    @property
    def stats(self) -> dict[str, int]:
        """Events counted, and events left out because their cell had been dropped."""
        return self.table.stats

    def load(self, state: Mapping[str, Mapping[str, Any]]) -> None:
        """Replace the in-memory state with `state` (as recovered from the changelog)."""
        self._compiled.clear()  # the counters' cursors point at cells of the old state
        watermark = state.get(WATERMARK_KEY, {})
        self.watermark_ms = int(watermark.get("time_ms", 0))
        self.applied_at_ms = int(watermark.get("applied_at_ms", 0))
        self.table.load({k: dict(v) for k, v in state.items() if k != WATERMARK_KEY})

    def state(self) -> dict[str, dict[str, Any]]:
        """The whole state, as `load` takes it."""
        state = {key: cell.dump() for key, cell in self.table.cells.items()}
        state[WATERMARK_KEY] = {"time_ms": self.watermark_ms, "applied_at_ms": self.applied_at_ms}
        return state

    def apply(
        self, columns: Sequence[EventColumns | MixedColumns], *, now_ms: int | None = None
    ) -> tuple[list[QuotaAlert], dict[str, dict[str, Any] | None]]:
        """Count the records' events and return (new crossings, state delta: key -> value or None).

        `columns` holds one `EventColumns` per record, or a chunk of single-event records
        of many tenants (`MixedColumns`), in offset order. The delta holds every
        cell this batch changed or evicted (None = delete) and the watermark; applying it to
        the previous state gives `state()`.
        """
        emitted_at = int(time.time() * 1000) if now_ms is None else now_ms
        alerts: list[QuotaAlert] = []
        touched: dict[str, Cell] = {}
        events = 0
        quotas_of, compiled = self.book.by_tenant, self._compiled
        watermark = self.watermark_ms
        for record in _records(columns, quotas_of):
            if isinstance(record, _Others):  # events of tenants without quotas
                events += record.events
                if record.top > watermark:
                    watermark = record.top
                continue
            times = record.time_ms
            n = len(times)
            events += n
            quotas = quotas_of.get(record.tenant_id)
            if not quotas:  # most tenants: only the watermark moves
                top = max(times, default=watermark)
                if top > watermark:
                    watermark = top
                continue
            entry = compiled.get(record.tenant_id)
            if entry is None or entry[0] is not quotas:  # the book made a new tuple: changed
                counters = tuple(map(self._counter, quotas))
                scoped = any(counter.model is not None for counter in counters)
                entry = compiled[record.tenant_id] = (quotas, counters, scoped)
            scoped = entry[2]
            # The record's time span and its token columns' sums (`TOKEN_COLUMNS` order, as
            # `counter.weights`); a single CloudEvent needs neither min, max nor sum.
            if n == 1:
                first = last = times[0]
                sums = [
                    record.input_tokens[0],
                    record.output_tokens[0],
                    record.cache_read_input_tokens[0],
                    record.cache_creation_input_tokens[0],
                    record.reasoning_output_tokens[0],
                ]
            elif n:
                first, last = min(times), max(times)
                sums = list(map(sum, record.tokens()))
            else:
                continue
            before = watermark  # the watermark before the record's first event
            if last > watermark:
                watermark = last  # ... and after its last
            found: list[Crossing] = []
            for index, counter in enumerate(entry[1]):
                model = counter.model
                if scoped and model is not None and record.model.count(model) != n:
                    if model in record.model:  # some events are of other models
                        rows = list(compress(count(), map(model.__eq__, record.model)))
                        counter.count_rows(index, record, rows, before, found, touched)
                    continue
                if not (
                    counter.cell_start <= first
                    and last < counter.cell_end
                    and watermark <= counter.cell_late_after
                ):  # not all under the counter's cursor, or some late
                    counter.count_other_cell(
                        index, record, first, last, before, watermark, found, touched
                    )
                    continue
                # The common case: every event in the cursor's cell, none late. The same
                # sum as `usage.usage_of`, on sums already taken for every quota.
                added = sum(map(mul, sums, counter.weights))
                if added:
                    cell = counter.cell
                    old = cell.usage
                    cell.usage = old + added
                    touched[counter.cell_key] = cell
                    if cell.usage >= counter.low:
                        start, end = counter.cell_start, counter.cell_end
                        counter.cross(index, record, None, start, end, cell, old, found)
            if found:
                found.sort(key=_event_order)  # (row, quota, threshold) is unique per crossing
                for c in found:
                    quota = c.counter.quota
                    used = units.to_decimal(quota, c.usage)
                    alerts.append(_alert(quota, c.start, c.end, c.pct, used, c.time_ms, emitted_at))
        self.watermark_ms = watermark
        self.table.stats["events"] += events
        delta: dict[str, dict[str, Any] | None] = {k: c.dump() for k, c in touched.items()}
        # Counters may still point at evicted cells, but never pass their late check again.
        delta.update(dict.fromkeys(self.table.evict(self.watermark_ms)))
        self.applied_at_ms = emitted_at
        delta[WATERMARK_KEY] = {"time_ms": self.watermark_ms, "applied_at_ms": emitted_at}
        return alerts, delta

    def _counter(self, quota: QuotaDefinition) -> QuotaCounter:
        horizon = self.rate_late_horizon_ms if quota.period == "minute" else self.late_horizon_ms
        return QuotaCounter(quota, horizon, self.table)


class _Others(NamedTuple):
    """Consecutive events of a chunk whose tenants have no quota: only the watermark moves."""

    events: int
    top: int  # their highest event time


def _records(
    columns: Sequence[EventColumns | MixedColumns], quotas_of: Mapping[str, Any]
) -> Iterator[EventColumns | _Others]:
    """The records in offset order; a chunk of single events as the records of tenants
    with quotas (one `EventColumns` each) between runs of the others (`_Others`), so the
    watermark before each record is what it was record by record."""
    for part in columns:
        if not isinstance(part, MixedColumns):
            yield part
            continue
        tenants, times = part.tenant, part.events.time_ms
        done = 0
        for i in compress(count(), map(quotas_of.__contains__, tenants)):
            if i > done:
                yield _Others(i - done, max(times[done:i]))
            yield part.record(i)
            done = i + 1
        if done < len(tenants):
            yield _Others(len(tenants) - done, max(times[done:]))


def _alert(
    quota: QuotaDefinition,
    start: int,
    end: int,
    pct: int,
    usage: Decimal,
    time_ms: int,
    emitted_at: int,
) -> QuotaAlert:
    return QuotaAlert(
        tenant_id=quota.tenant_id,
        quota=quota.name,
        model=quota.model,
        period=quota.period,
        period_start_ms=start,
        period_end_ms=end,
        threshold_pct=pct,
        usage=usage,
        limit=quota.limit,
        unit=(quota.currency or "tokens") if quota.is_cost else "tokens",
        time_ms=time_ms,
        emitted_at_ms=emitted_at,
    )
