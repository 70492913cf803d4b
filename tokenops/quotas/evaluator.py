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
- `"<tenant>|<quota>|<period_start_ms>"` -> `{"usage": int | str, "crossed": [pct, ...],
  "end_ms": int}`; `usage` is a decimal string for cost budgets;
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
quota sums the record's usage with C-level column sums, adds it to its cell and compares
the new usage with its lowest threshold bound, once per record. Only when a threshold
is crossed inside a record does it look at single events (a cumulative sum) to find the
event that crossed it, whose time and usage the alert carries. Records spanning several
periods of a quota, holding other models than a model-scoped quota's, or reaching past a
cell's late horizon take an exact slower path (`_count_rows`).
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from itertools import accumulate, compress, count
from operator import attrgetter, mul
from typing import Any, NamedTuple

from tokenops.quotas.book import QuotaBook
from tokenops.quotas.plan import PICOS, QuotaPlan
from tokenops.schemas.columns import EventColumns
from tokenops.schemas.quota import QuotaAlert, QuotaDefinition

WATERMARK_KEY = "~watermark"
_HOUR_MS = 3_600_000


class _Crossing(NamedTuple):
    """A threshold crossed inside a record; sorted by (row, quota, threshold) = event order."""

    row: int  # the crossing event's position in its record
    quota: int  # the quota's position in the tenant's book entry
    threshold: int  # the threshold's position (ascending)
    pct: int
    plan: QuotaPlan
    start: int
    end: int
    usage: int  # the cell's usage just after the crossing event
    time_ms: int


_event_order = attrgetter("row", "quota", "threshold")


@dataclass(slots=True)
class _Cell:
    usage: int  # tokens, or picos of the currency for a cost budget
    crossed: list[int]
    end_ms: int
    cost: bool = False

    def dump(self) -> dict[str, Any]:
        usage: int | str = self.usage
        if self.cost:  # picos -> a decimal string, without Decimal arithmetic (hot path)
            whole, picos = divmod(self.usage, PICOS)
            usage = f"{whole}.{picos:012d}".rstrip("0").rstrip(".")
        return {"usage": usage, "crossed": self.crossed[:], "end_ms": self.end_ms}


@dataclass
class QuotaEvaluator:
    """Usage and crossings of the quotas in `book`, for the tenants of one partition."""

    book: QuotaBook
    late_horizon_ms: int = 24 * _HOUR_MS
    # Longer than the contract's 5 min future skew, so a skewed clock cannot evict the
    # current minute; minute cells are small and few.
    rate_late_horizon_ms: int = 10 * 60_000
    cells: dict[str, _Cell] = field(default_factory=dict)
    watermark_ms: int = 0
    applied_at_ms: int = 0
    stats: dict[str, int] = field(default_factory=lambda: {"events": 0, "late_ignored": 0})
    # tenant -> (the book's quota tuple, its compiled plans, whether any is model-scoped);
    # a new tuple means a change
    _compiled: dict[str, tuple[tuple[QuotaDefinition, ...], tuple[QuotaPlan, ...], bool]] = field(
        default_factory=dict
    )
    _expiry: dict[int, set[str]] = field(default_factory=dict)  # expiry ms -> cell keys

    def load(self, state: Mapping[str, Mapping[str, Any]]) -> None:
        """Replace the in-memory state with `state` (as recovered from the changelog)."""
        self.cells.clear()
        self._expiry.clear()
        self._compiled.clear()  # its plans remember cells of the old state
        self.watermark_ms = self.applied_at_ms = 0
        for key, value in state.items():
            if key == WATERMARK_KEY:
                self.watermark_ms = int(value["time_ms"])
                self.applied_at_ms = int(value.get("applied_at_ms", 0))
                continue
            raw, crossed = value["usage"], [int(t) for t in value["crossed"]]
            cost = isinstance(raw, str)  # cost budgets keep a decimal string
            usage = int(Decimal(raw) * PICOS) if cost else int(raw)
            cell = self.cells[key] = _Cell(usage, crossed, int(value["end_ms"]), cost)
            self._expire(key, cell.end_ms + self._horizon_of(key, cell))

    def state(self) -> dict[str, dict[str, Any]]:
        """The whole state, as `load` takes it."""
        state = {key: cell.dump() for key, cell in self.cells.items()}
        state[WATERMARK_KEY] = {"time_ms": self.watermark_ms, "applied_at_ms": self.applied_at_ms}
        return state

    def apply(
        self, columns: Sequence[EventColumns], *, now_ms: int | None = None
    ) -> tuple[list[QuotaAlert], dict[str, dict[str, Any] | None]]:
        """Count the records' events and return (new crossings, state delta: key -> value or None).

        `columns` holds one `EventColumns` per record, in offset order. The delta holds every
        cell this batch changed or evicted (None = delete) and the watermark; applying it to
        the previous state gives `state()`.
        """
        emitted_at = int(time.time() * 1000) if now_ms is None else now_ms
        alerts: list[QuotaAlert] = []
        touched: dict[str, _Cell] = {}
        events = 0
        quotas_of, compiled = self.book.by_tenant, self._compiled
        watermark = self.watermark_ms
        for record in columns:
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
                plans = tuple(map(self._plan, quotas))
                scoped = any(plan.model is not None for plan in plans)
                entry = compiled[record.tenant_id] = (quotas, plans, scoped)
            scoped = entry[2]
            # The record's time span and its token columns' sums (`TOKEN_COLUMNS` order, as
            # `plan.weights`); a single CloudEvent needs neither min, max nor sum.
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
            found: list[_Crossing] = []
            for index, plan in enumerate(entry[1]):
                if scoped and plan.model is not None and record.model.count(plan.model) != n:
                    if plan.model in record.model:  # some events are of other models
                        rows = list(compress(count(), map(plan.model.__eq__, record.model)))
                        self._count_rows(plan, index, record, rows, before, found, touched)
                    continue
                if not (
                    plan.cell_start <= first
                    and last < plan.cell_end
                    and watermark <= plan.cell_late_after
                ):  # not all in the plan's current cell, or some late
                    self._count_other_cell(
                        plan, index, record, first, last, before, watermark, found, touched
                    )
                    continue
                # The common case: every event in the plan's current cell, none late.
                added = sum(map(mul, sums, plan.weights))
                if added:
                    cell = plan.cell
                    old = cell.usage
                    cell.usage = old + added
                    touched[plan.cell_key] = cell
                    if cell.usage >= plan.low:
                        start, end = plan.cell_start, plan.cell_end
                        self._cross(plan, index, record, None, start, end, cell, old, found)
            if found:
                found.sort(key=_event_order)  # (row, quota, threshold) is unique per crossing
                for c in found:
                    usage = c.plan.to_decimal(c.usage)
                    alerts.append(
                        _alert(c.plan.quota, c.start, c.end, c.pct, usage, c.time_ms, emitted_at)
                    )
        self.watermark_ms = watermark
        self.stats["events"] += events
        delta: dict[str, dict[str, Any] | None] = {k: c.dump() for k, c in touched.items()}
        delta.update(dict.fromkeys(self._evict()))
        self.applied_at_ms = emitted_at
        delta[WATERMARK_KEY] = {"time_ms": self.watermark_ms, "applied_at_ms": emitted_at}
        return alerts, delta

    def _plan(self, quota: QuotaDefinition) -> QuotaPlan:
        horizon = self.rate_late_horizon_ms if quota.period == "minute" else self.late_horizon_ms
        return QuotaPlan(quota, horizon)

    def _count_other_cell(
        self,
        plan: QuotaPlan,
        index: int,
        record: EventColumns,
        first: int,
        last: int,
        before: int,
        after: int,
        found: list[_Crossing],
        touched: dict[str, _Cell],
    ) -> None:
        """All of `record` for `plan` when the plan's current cell is not theirs: one other
        cell (a new period, an older one) or, via `_count_rows`, several or late events."""
        start, end = plan.bounds_at(first)
        if last >= end or end + plan.horizon_ms < after:
            self._count_rows(plan, index, record, None, before, found, touched)
            return
        added = plan.total(record)
        if not added:
            return
        key, cell = self._cell(plan, start, end)
        old = cell.usage
        cell.usage = old + added
        touched[key] = cell
        if cell.usage >= plan.low:
            self._cross(plan, index, record, None, start, end, cell, old, found)

    def _count_rows(
        self,
        plan: QuotaPlan,
        index: int,
        record: EventColumns,
        rows: list[int] | None,
        before: int,
        found: list[_Crossing],
        touched: dict[str, _Cell],
    ) -> None:
        """The exact path for the events at `rows` (None: all) of `record`: split by period,
        leave out the late ones, then count each period's events as one."""
        times = record.time_ms
        remaining = list(range(len(times))) if rows is None else rows
        while remaining:
            start, end = plan.bounds_at(min(map(times.__getitem__, remaining)))
            if max(map(times.__getitem__, remaining)) < end:
                inside, remaining = remaining, []
            else:
                inside = [row for row in remaining if times[row] < end]
                remaining = [row for row in remaining if times[row] >= end]
            late_after = end + plan.horizon_ms
            if before > late_after:
                live: list[int] = []
            else:
                # The watermark reaches past `late_after` at the first event later than it.
                cut = next(compress(count(), map(late_after.__lt__, times)), len(times))
                live = inside if cut > inside[-1] else [row for row in inside if row < cut]
            self.stats["late_ignored"] += len(inside) - len(live)
            if not live:
                continue
            added = (
                plan.total(record) if len(live) == len(times) else sum(plan.usages(record, live))
            )
            if not added:
                continue
            key, cell = self._cell(plan, start, end)
            old = cell.usage
            cell.usage = old + added
            touched[key] = cell
            if cell.usage >= plan.low:
                self._cross(plan, index, record, live, start, end, cell, old, found)

    def _cell(self, plan: QuotaPlan, start: int, end: int) -> tuple[str, _Cell]:
        """The cell of `plan`'s period [start, end), created if new; the plan remembers it.

        A remembered cell stays valid until a `load` (which drops the plans): the evaluator
        only evicts a cell once
        the watermark is past its end plus horizon, which fails the plan's late check
        (`cell_late_after`) for good. A cell of the same key but another end (the quota's
        period changed) expires at another time, so it is looked up again every time.
        """
        if plan.cell_start == start and plan.cell_end == end:
            return plan.cell_key, plan.cell
        quota = plan.quota
        key = f"{quota.tenant_id}|{quota.name}|{start}"
        cell = self.cells.get(key)
        if cell is None:
            cell = self.cells[key] = _Cell(0, [], end, bool(plan.prices))
            self._expire(key, end + plan.horizon_ms)
        if cell.end_ms == end:
            plan.remember(start, end, key, cell)
        return key, cell

    def _cross(
        self,
        plan: QuotaPlan,
        index: int,
        record: EventColumns,
        rows: list[int] | None,
        start: int,
        end: int,
        cell: _Cell,
        old: int,
        found: list[_Crossing],
    ) -> None:
        """Record the thresholds the events at `rows` (None: all) took `cell` across.

        Event by event, a threshold is checked after each event that adds usage; so the
        crossing event is the first whose running usage reaches the bound, or, for a bound
        the cell already reached before (a lowered limit), the first that adds any usage.
        """
        new, crossed = cell.usage, cell.crossed
        running: list[int] = []
        for position, (pct, bound) in enumerate(plan.bounds):
            if new < bound:
                break  # bounds ascend
            if pct in crossed:
                continue
            if not running:  # running[j + 1]: the cell's usage just after event j
                running = list(accumulate(plan.usages(record, rows), initial=old))
            # The first event whose running usage reaches the bound; when the cell reached
            # it before this record (a lowered limit), the first event adding any usage.
            at = bisect_left(running, max(bound, old + 1)) - 1
            crossed.append(pct)
            row = at if rows is None else rows[at]
            found.append(
                _Crossing(
                    row,
                    index,
                    position,
                    pct,
                    plan,
                    start,
                    end,
                    running[at + 1],
                    record.time_ms[row],
                )
            )

    def _expire(self, key: str, at_ms: int) -> None:
        self._expiry.setdefault(at_ms, set()).add(key)

    def _horizon_of(self, key: str, cell: _Cell) -> int:
        # A recovered cell does not name its quota's period; a minute cell spans 60 s.
        minute = cell.end_ms - int(key.rsplit("|", 1)[1]) == 60_000
        return self.rate_late_horizon_ms if minute else self.late_horizon_ms

    def _evict(self) -> list[str]:
        """Drop the cells whose late horizon the watermark has passed (few distinct ends)."""
        gone: list[str] = []
        for at_ms in [at for at in self._expiry if at < self.watermark_ms]:
            for key in self._expiry.pop(at_ms):
                if self.cells.pop(key, None) is not None:
                    gone.append(key)
        return gone  # plans may remember these cells, but never pass their late check again


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
