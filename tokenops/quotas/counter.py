"""One quota on one partition: its usage per period, its crossings, and its cursor.

`QuotaCounter` compiles a quota once (the columns it reads and their weights, from
`usage.py`; its thresholds as integer bounds) and keeps a cursor on the cell of the period
it last counted in, so the evaluator's common case (every event of a record in that
period, none late) is one multiply-add without a lookup. The other cases come here:
`count_other_cell` (a record all in one other period) and `count_rows` (a record spanning
periods, holding late events, or only partly of a model-scoped quota's model). When a
count reaches a threshold's bound, `cross` looks at single events to find the one that
crossed it.

The cursor stays valid until the evaluator reloads its state (it then makes new
counters): a cell is evicted only once the watermark is past its end plus horizon, which
fails the cursor's late check (`cell_late_after`) for good.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Sequence
from itertools import accumulate, compress, count, repeat
from operator import add, attrgetter, mul
from typing import Any, NamedTuple

from tokenops.quotas import usage as units
from tokenops.quotas.cells import Cell, CellTable
from tokenops.schemas.columns import TOKEN_COLUMNS, EventColumns
from tokenops.schemas.quota import QuotaDefinition

_SHARED: dict[tuple[str, str], tuple[int, int]] = {}  # (period, timezone) -> last bounds


def shared_period_bounds(quota: QuotaDefinition, time_ms: int) -> tuple[int, int]:
    """[start, end) of `quota`'s period holding `time_ms`. Every quota with this period
    and timezone shares the boundaries: computing a local midnight is the costly part,
    so it is done once per period change, not once per quota."""
    zone = (quota.period, quota.timezone)
    start, end = _SHARED.get(zone, (0, -1))
    if not start <= time_ms < end:
        start, end = _SHARED[zone] = quota.period_bounds(time_ms)
    return start, end


class Crossing(NamedTuple):
    """A threshold crossed inside a record; sorted by (row, quota, threshold) = event order."""

    row: int  # the crossing event's position in its record
    quota: int  # the quota's position in the tenant's book entry
    threshold: int  # the threshold's position (ascending)
    pct: int
    counter: QuotaCounter
    start: int
    end: int
    usage: int  # the cell's usage just after the crossing event
    time_ms: int


class QuotaCounter:
    __slots__ = (
        "_columns",
        "_end",
        "_start",
        "_weights",
        "bounds",
        "cell",
        "cell_end",
        "cell_key",
        "cell_late_after",
        "cell_start",
        "cost",
        "horizon_ms",
        "low",
        "model",
        "quota",
        "table",
        "weights",
    )

    def __init__(self, quota: QuotaDefinition, horizon_ms: int, table: CellTable) -> None:
        self.quota = quota
        self.model = quota.model
        self.horizon_ms = horizon_ms
        self.table = table
        self.cost = quota.is_cost
        # Per token column: 1 if counted, or picos per token; a record's usage is then
        # sum(map(mul, column_sums, weights)).
        self.weights = units.weights(quota)
        read = [(name, w) for name, w in zip(TOKEN_COLUMNS, self.weights, strict=False) if w]
        # One C-level attrgetter call per record gives the token columns this quota reads.
        self._columns = _tuple_getter(tuple(name for name, _ in read))
        self._weights = tuple(w for _, w in read) if self.cost else ()  # (): every weight 1
        self.bounds = units.bounds(quota.limit, self.cost, quota.thresholds_pct)
        self.low = self.bounds[0][1]  # below the lowest bound no threshold needs a look
        self._start, self._end = 0, -1
        # The cursor: the cell of the current period [cell_start, cell_end) (none yet);
        # once the watermark passes `cell_late_after` (end + horizon) its events are late.
        self.cell: Any = None
        self.cell_key, self.cell_start, self.cell_end = "", 0, -1
        self.cell_late_after = -1

    def count_other_cell(
        self,
        index: int,
        record: EventColumns,
        first: int,
        last: int,
        before: int,
        after: int,
        found: list[Crossing],
        touched: dict[str, Cell],
    ) -> None:
        """All of `record` when the cursor's cell is not theirs: one other cell (a new
        period, an older one) or, via `count_rows`, several or late events."""
        start, end = self.bounds_at(first)
        if last >= end or end + self.horizon_ms < after:
            self.count_rows(index, record, None, before, found, touched)
            return
        added = self.total(record)
        if added:
            self._add(added, index, record, None, start, end, found, touched)

    def count_rows(
        self,
        index: int,
        record: EventColumns,
        rows: list[int] | None,
        before: int,
        found: list[Crossing],
        touched: dict[str, Cell],
    ) -> None:
        """The exact path for the events at `rows` (None: all) of `record`: split by period,
        leave out the late ones, then count each period's events as one."""
        times = record.time_ms
        remaining = list(range(len(times))) if rows is None else rows
        while remaining:
            start, end = self.bounds_at(min(map(times.__getitem__, remaining)))
            if max(map(times.__getitem__, remaining)) < end:
                inside, remaining = remaining, []
            else:
                inside = [row for row in remaining if times[row] < end]
                remaining = [row for row in remaining if times[row] >= end]
            late_after = end + self.horizon_ms
            if before > late_after:
                live: list[int] = []
            else:
                # The watermark reaches past `late_after` at the first event later than it.
                cut = next(compress(count(), map(late_after.__lt__, times)), len(times))
                live = inside if cut > inside[-1] else [row for row in inside if row < cut]
            self.table.stats["late_ignored"] += len(inside) - len(live)
            if not live:
                continue
            added = (
                self.total(record) if len(live) == len(times) else sum(self.usages(record, live))
            )
            if added:
                self._add(added, index, record, live, start, end, found, touched)

    def _add(
        self,
        added: int,
        index: int,
        record: EventColumns,
        rows: list[int] | None,
        start: int,
        end: int,
        found: list[Crossing],
        touched: dict[str, Cell],
    ) -> None:
        """Add the usage of the events at `rows` (None: all) to the cell of [start, end)."""
        key, cell = self._cell(start, end)
        old = cell.usage
        cell.usage = old + added
        touched[key] = cell
        if cell.usage >= self.low:
            self.cross(index, record, rows, start, end, cell, old, found)

    def cross(
        self,
        index: int,
        record: EventColumns,
        rows: list[int] | None,
        start: int,
        end: int,
        cell: Cell,
        old: int,
        found: list[Crossing],
    ) -> None:
        """Record the thresholds the events at `rows` (None: all) took `cell` across.

        Event by event, a threshold is checked after each event that adds usage; so the
        crossing event is the first whose running usage reaches the bound, or, for a bound
        the cell already reached before (a lowered limit), the first that adds any usage.
        """
        new, crossed = cell.usage, cell.crossed
        running: list[int] = []
        for position, (pct, bound) in enumerate(self.bounds):
            if new < bound:
                break  # bounds ascend
            if pct in crossed:
                continue
            if not running:  # running[j + 1]: the cell's usage just after event j
                running = list(accumulate(self.usages(record, rows), initial=old))
            at = bisect_left(running, max(bound, old + 1)) - 1
            crossed.append(pct)
            row = at if rows is None else rows[at]
            found.append(
                Crossing(
                    row,
                    index,
                    position,
                    pct,
                    self,
                    start,
                    end,
                    running[at + 1],
                    record.time_ms[row],
                )
            )

    def total(self, record: EventColumns) -> int:
        """The usage of all of `record`'s events: one C-level sum per column."""
        if self._weights:
            return sum(map(mul, map(sum, self._columns(record)), self._weights))
        return sum(map(sum, self._columns(record)))

    def usages(self, record: EventColumns, rows: Sequence[int] | None) -> list[int]:
        """The usage of each event of `record` at the positions `rows` (None: all)."""
        columns: Sequence[Sequence[int]] = self._columns(record)
        if rows is not None:
            columns = [list(map(column.__getitem__, rows)) for column in columns]
        n = len(record) if rows is None else len(rows)
        usage: list[int] = [0] * n
        for column, weight in zip(columns, self._weights or repeat(1), strict=False):
            usage = list(
                map(add, usage, column if weight == 1 else map(mul, column, repeat(weight)))
            )
        return usage

    def bounds_at(self, time_ms: int) -> tuple[int, int]:
        """[start, end) of the period holding `time_ms`; the last answer is reused."""
        if not self._start <= time_ms < self._end:
            self._start, self._end = shared_period_bounds(self.quota, time_ms)
        return self._start, self._end

    def _cell(self, start: int, end: int) -> tuple[str, Cell]:
        """The cell of period [start, end), created if new; the cursor moves to it. A cell
        of the same key but another end (the quota's period changed) expires at another
        time, so it is looked up again every time."""
        if self.cell_start == start and self.cell_end == end:
            return self.cell_key, self.cell
        key = f"{self.quota.tenant_id}|{self.quota.name}|{start}"
        # A budget whose prices are all zero never counts: its cells keep plain integers.
        cell = self.table.open(key, end, self.horizon_ms, bool(self._weights))
        if cell.end_ms == end:
            self.cell_start, self.cell_end = start, end
            self.cell_key, self.cell = key, cell
            self.cell_late_after = end + self.horizon_ms
        return key, cell


def _tuple_getter(names: tuple[str, ...]) -> Callable[[Any], tuple[list[int], ...]]:
    """attrgetter, always returning a tuple (it returns a bare value for one name)."""
    if not names:
        return lambda _record: ()
    getter: Callable[[Any], Any] = attrgetter(*names)
    if len(names) > 1:
        return getter
    return lambda record: (getter(record),)
