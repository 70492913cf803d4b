"""Event-time tumbling windows of one partition: the watermark, closing, late corrections.

Pure logic with explicit timestamps, no Kafka and no clock. One `WindowBook` per input
partition holds the open windows and the watermark; `begin()` starts a batch, `add()`
counts one accepted event (`add_columns()` a whole record's), `finish()` advances the
watermark and closes windows. A batch decides lateness against the watermark it started
with, so its result depends only on the state before it and its events.

A window is one tenant, model and region (`WindowId`; '' for events without a region) in
one tumbling interval. Totals are plain lists (`Totals`): five token counts (`TOKEN_TYPES`
order), the event count, the first and last event time and the revision (0 while the
window is open).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from itertools import compress, repeat
from operator import eq, mod, sub
from typing import Any

from tokenops.schemas.columns import EventColumns, MixedColumns

WindowId = tuple[str, str, str, int]  # tenant_id, model, region, window_start_ms
Group = tuple[str, str, str]  # tenant_id, model, region: a window within its start
Totals = list[int]
COUNT, FIRST, LAST, REVISION = 5, 6, 7, 8
NO_TIME = -(2**62)
# A record whose events fall into more (model, region, window) groups than this is counted event
# by event: each group costs a few passes over the whole record.
MAX_COLUMN_GROUPS = 8


def new_totals(time_ms: int) -> Totals:
    return [0, 0, 0, 0, 0, 0, time_ms, time_ms, 0]


def _tokens(d: dict[str, Any]) -> tuple[int, int, int, int, int]:
    return (
        d["input_tokens"],
        d["output_tokens"],
        d["cache_read_input_tokens"],
        d["cache_creation_input_tokens"],
        d["reasoning_output_tokens"],
    )


def add_event(totals: Totals, tokens: Sequence[int], time_ms: int) -> None:
    totals[0] += tokens[0]
    totals[1] += tokens[1]
    totals[2] += tokens[2]
    totals[3] += tokens[3]
    totals[4] += tokens[4]
    totals[COUNT] += 1
    if time_ms < totals[FIRST]:
        totals[FIRST] = time_ms
    if time_ms > totals[LAST]:
        totals[LAST] = time_ms


@dataclass
class BatchResult:
    """What one batch changed: every value absolute, ready to emit and to persist."""

    open: dict[WindowId, Totals] = field(default_factory=dict)  # touched, still open
    emitted: dict[WindowId, Totals] = field(default_factory=dict)  # closed or corrected
    closed: list[WindowId] = field(default_factory=list)  # left the open set
    late_events: int = 0
    corrections: int = 0


class WindowBook:
    """The open windows and watermark of one partition.

    `closed_lookup(window)` returns the stored totals of a closed window (or None); it is
    consulted only for late events, whose window already closed.
    """

    def __init__(
        self,
        window_ms: int,
        lateness_ms: int,
        *,
        open_windows: dict[int, dict[Group, Totals]] | None = None,
        max_event_ms: int = NO_TIME,
        watermark_ms: int = NO_TIME,
    ) -> None:
        self.window_ms = window_ms
        self.lateness_ms = lateness_ms
        # by window start, so closing touches only the windows that end
        self.open: dict[int, dict[Group, Totals]] = open_windows or {}
        self.max_event_ms = max_event_ms
        self.watermark_ms = watermark_ms
        self._batch: BatchResult | None = None
        self._lookup: Callable[[WindowId], Totals | None] = lambda _: None

    def window_start(self, time_ms: int) -> int:
        return time_ms - time_ms % self.window_ms

    def is_late(self, time_ms: int) -> bool:
        """True if the event's window already closed (its end is at or below the watermark)."""
        return self.window_start(time_ms) + self.window_ms <= self.watermark_ms

    def begin(self, closed_lookup: Callable[[WindowId], Totals | None]) -> None:
        self._batch = BatchResult()
        self._lookup = closed_lookup

    def add(
        self,
        tenant_id: str,
        model: str,
        time_ms: int,
        tokens: tuple[int, int, int, int, int],
        region: str = "",
    ) -> None:
        batch = self._batch
        assert batch is not None, "add() outside begin()/finish()"
        start = time_ms - time_ms % self.window_ms
        window = (tenant_id, model, region, start)
        if time_ms > self.max_event_ms:
            self.max_event_ms = time_ms
        if start + self.window_ms > self.watermark_ms:
            slot = self.open.get(start)
            if slot is None:
                slot = self.open[start] = {}
            totals = slot.get((tenant_id, model, region))
            if totals is None:
                totals = slot[(tenant_id, model, region)] = new_totals(time_ms)
            add_event(totals, tokens, time_ms)
            batch.open[window] = totals
            return
        batch.late_events += 1
        corrected = batch.emitted.get(window)
        if corrected is None:
            stored = self._lookup(window)
            corrected = list(stored) if stored is not None else new_totals(time_ms)
            corrected[REVISION] += 1  # a window never seen before gets revision 1
            batch.emitted[window] = corrected
            batch.corrections += 1
        add_event(corrected, tokens, time_ms)

    def add_events(self, events: Iterable[Any]) -> None:
        """`add()` for many events (objects with the `UsageEvent` fields and `time_ms`),
        in order, through the one per-event loop (`_add_rows`)."""
        self._add_rows(
            (e.tenant_id, e.model, e.region, e.time_ms, _tokens(e.__dict__)) for e in events
        )

    def add_records(self, records: Sequence[EventColumns | MixedColumns]) -> None:
        """`add_columns()` for each record, in order; `add_mixed()` for a chunk of single
        events. A record of one event (what most producers that are not the SDK send) is
        added inline: no per-record sums, no grouping. Same result as calling `add()` for
        each event in order."""
        batch = self._batch
        assert batch is not None, "add_records() outside begin()/finish()"
        size, open_windows, touched = self.window_ms, self.open, batch.open
        for columns in records:
            if isinstance(columns, MixedColumns):
                self.add_mixed(columns)
                continue
            times = columns.time_ms
            if len(times) != 1:
                self.add_columns(columns)
                continue
            t = times[0]
            start = t - t % size
            if start + size <= self.watermark_ms:  # late: a correction
                self._add_each(
                    columns.tenant_id, columns.model, columns.region, times, columns.tokens()
                )
                continue
            if t > self.max_event_ms:
                self.max_event_ms = t
            slot = open_windows.get(start)
            if slot is None:
                slot = open_windows[start] = {}
            group = (columns.tenant_id, columns.model[0], columns.region[0] or "")
            totals = slot.get(group)
            if totals is None:
                totals = slot[group] = new_totals(t)
            totals[0] += columns.input_tokens[0]
            totals[1] += columns.output_tokens[0]
            totals[2] += columns.cache_read_input_tokens[0]
            totals[3] += columns.cache_creation_input_tokens[0]
            totals[4] += columns.reasoning_output_tokens[0]
            totals[COUNT] += 1
            if t < totals[FIRST]:
                totals[FIRST] = t
            if t > totals[LAST]:
                totals[LAST] = t
            touched[(*group, start)] = totals

    def add_mixed(self, chunk: MixedColumns) -> None:
        """`add()` for every event of a chunk of single events of many tenants, in order:
        one pass over the columns (each event is usually the only one of its tenant, model
        and window in the chunk, so there is nothing to sum first)."""
        ev = chunk.events
        tokens = zip(*ev.tokens(), strict=True)
        self._add_rows(zip(chunk.tenant, ev.model, ev.region, ev.time_ms, tokens, strict=True))

    def _add_rows(
        self, rows: Iterable[tuple[str, str, str | None, int, tuple[int, int, int, int, int]]]
    ) -> None:
        """The per-event loop of `add_events` and `add_mixed`: an on-time event is added
        inline to its open window; a late one takes `add()` (a correction)."""
        batch = self._batch
        assert batch is not None, "adding events outside begin()/finish()"
        size, open_windows, touched = self.window_ms, self.open, batch.open
        highest = self.max_event_ms
        for tenant_id, model, region, t, tokens in rows:
            start = t - t % size
            if start + size <= self.watermark_ms:  # late: a correction
                self.max_event_ms = max(highest, self.max_event_ms)
                self.add(tenant_id, model, t, tokens, region or "")
                highest = self.max_event_ms
                continue
            if t > highest:
                highest = t
            slot = open_windows.get(start)
            if slot is None:
                slot = open_windows[start] = {}
            group = (tenant_id, model, region or "")
            totals = slot.get(group)
            if totals is None:
                totals = slot[group] = [0, 0, 0, 0, 0, 0, t, t, 0]
            add_event(totals, tokens, t)
            touched[(*group, start)] = totals
        self.max_event_ms = max(highest, self.max_event_ms)

    def add_columns(self, columns: EventColumns) -> None:
        """`add()` for every event of one record (the worker's hot path).

        A record holds one tenant, and usually one model, one region and one window: its
        token columns are then summed with `sum()`, a single C-level pass each, and no
        per-event Python code runs. A few (model, region, window) groups are summed group
        by group; late events (their window closed) and records of many groups take the
        per-event path.
        Same result as calling `add()` for each event in order, down to the order in which
        windows first appear in the book and the batch result.
        """
        assert self._batch is not None, "add_columns() outside begin()/finish()"
        times = columns.time_ms
        n = len(times)
        if not n:
            return
        size, tenant_id, models, regions = (
            self.window_ms,
            columns.tenant_id,
            columns.model,
            columns.region,
        )
        lo, hi = min(times), max(times)
        start = lo - lo % size
        if (
            start == hi - hi % size
            and models.count(models[0]) == n
            and regions.count(regions[0]) == n
        ):
            if start + size > self.watermark_ms:
                region = regions[0] or ""
                self._add_sums(tenant_id, models[0], region, start, columns.tokens(), n, lo, hi)
            else:
                self._add_each(tenant_id, models, regions, times, columns.tokens())
            return
        starts = list(map(sub, times, map(mod, times, repeat(size, n))))
        keys = list(zip(models, regions, starts, strict=True))
        groups = dict.fromkeys(keys)  # (model, region, start) in order of first appearance
        if len(groups) > MAX_COLUMN_GROUPS:
            self._add_each(tenant_id, models, regions, times, columns.tokens())
            return
        tokens = columns.tokens()
        for key in groups:
            model, key_region, start = key
            mask = list(map(eq, keys, repeat(key, n)))
            picked = list(compress(times, mask))
            group_tokens = [list(compress(column, mask)) for column in tokens]
            if start + size > self.watermark_ms:
                self._add_sums(
                    tenant_id,
                    model,
                    key_region or "",
                    start,
                    group_tokens,
                    len(picked),
                    min(picked),
                    max(picked),
                )
            else:
                k = len(picked)
                self._add_each(
                    tenant_id, repeat(model, k), repeat(key_region, k), picked, group_tokens
                )

    def _add_sums(
        self,
        tenant_id: str,
        model: str,
        region: str,
        start: int,
        tokens: Sequence[list[int]],
        n: int,
        lo: int,
        hi: int,
    ) -> None:
        """Add `n` on-time events of one open window, given their token columns and
        their lowest and highest time."""
        batch = self._batch
        assert batch is not None
        if hi > self.max_event_ms:
            self.max_event_ms = hi
        slot = self.open.get(start)
        if slot is None:
            slot = self.open[start] = {}
        group = (tenant_id, model, region)
        totals = slot.get(group)
        if totals is None:
            totals = slot[group] = new_totals(lo)
        totals[0] += sum(tokens[0])
        totals[1] += sum(tokens[1])
        totals[2] += sum(tokens[2])
        totals[3] += sum(tokens[3])
        totals[4] += sum(tokens[4])
        totals[COUNT] += n
        if lo < totals[FIRST]:
            totals[FIRST] = lo
        if hi > totals[LAST]:
            totals[LAST] = hi
        batch.open[(tenant_id, model, region, start)] = totals

    def _add_each(
        self,
        tenant_id: str,
        models: Iterable[str],
        regions: Iterable[str | None],
        times: Iterable[int],
        tokens: Sequence[Iterable[int]],
    ) -> None:
        """`add()` event by event: late events, and records of many groups."""
        add = self.add
        for model, region, time_ms, *counts in zip(models, regions, times, *tokens, strict=True):
            add(tenant_id, model, time_ms, tuple(counts), region or "")

    def finish(self, *, watermark_floor_ms: int = NO_TIME) -> BatchResult:
        """End the batch: advance the watermark (never backwards) and close windows.

        `watermark_floor_ms` lets an idle partition's watermark follow the wall clock.
        """
        batch = self._batch if self._batch is not None else BatchResult()
        self._batch = None
        watermark = max(self.watermark_ms, self.max_event_ms - self.lateness_ms, watermark_floor_ms)
        self.watermark_ms = watermark
        window_ms = self.window_ms
        for start in sorted(s for s in self.open if s + window_ms <= watermark):
            for (tenant_id, model, region), totals in self.open.pop(start).items():
                window = (tenant_id, model, region, start)
                totals[REVISION] = 1
                batch.open.pop(window, None)
                batch.closed.append(window)
                batch.emitted[window] = totals
        return batch

    def open_windows(self) -> dict[WindowId, Totals]:
        return {(t, m, r, s): v for s, slot in self.open.items() for (t, m, r), v in slot.items()}
