"""Quota evaluation in the stream: usage per tenant, quota and period, and threshold crossings.

`QuotaEvaluator` is pure: no Kafka, no clock unless none is given. The worker owns one per
partition (through `quota_processor.py`), calls `load(state)` after recovering the
partition, then `apply(events)` for each batch of deduplicated, accepted events. It
publishes the returned alerts, then makes the returned state delta durable in the same
changelog record as its other state. After a crash the batch is replayed from that state,
the same crossings are decided again, and the processor leaves out those already
published: each crossing is published once per quota, period and threshold, under the
key `tenant|quota|period_start_ms|threshold_pct`.

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
recreated to alert twice. Changes to the quota book apply from the next event on;
thresholds already crossed in a period stay crossed when a limit changes.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, Protocol

from tokenops.schemas.quota import QuotaAlert, QuotaDefinition
from tokenops.streams.quota_book import QuotaBook
from tokenops.streams.quota_plan import PICOS, QuotaPlan

WATERMARK_KEY = "~watermark"
_HOUR_MS = 3_600_000


class UsageLike(Protocol):
    """What the evaluator reads from an event (`tokenops.schemas.UsageEvent` fits)."""

    @property
    def tenant_id(self) -> str: ...
    @property
    def model(self) -> str: ...
    @property
    def time(self) -> datetime: ...


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
    # tenant -> (the book's quota tuple, its compiled plans); a new tuple means a change
    _compiled: dict[str, tuple[tuple[QuotaDefinition, ...], tuple[QuotaPlan, ...]]] = field(
        default_factory=dict
    )
    _expiry: dict[int, set[str]] = field(default_factory=dict)  # expiry ms -> cell keys
    _generation: int = 0  # bumped when cells may have been dropped; see QuotaPlan.remember

    def load(self, state: Mapping[str, Mapping[str, Any]]) -> None:
        """Replace the in-memory state with `state` (as recovered from the changelog)."""
        self.cells.clear()
        self._expiry.clear()
        self._generation += 1
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
        self, events: Iterable[UsageLike], *, now_ms: int | None = None
    ) -> tuple[list[QuotaAlert], dict[str, dict[str, Any] | None]]:
        """Count `events` and return (new crossings, state delta: key -> value or None).

        The delta holds every cell this batch changed or evicted (None = delete) and the
        watermark; applying it to the previous state gives `state()`.
        """
        emitted_at = int(time.time() * 1000) if now_ms is None else now_ms
        alerts: list[QuotaAlert] = []
        touched: set[str] = set()
        count, for_tenant, compiled = 0, self.book.for_tenant, self._compiled
        for event in events:
            count += 1
            time_ms = _time_ms(event)
            if time_ms > self.watermark_ms:
                self.watermark_ms = time_ms
            quotas = for_tenant(event.tenant_id)
            if not quotas:
                continue
            entry = compiled.get(event.tenant_id)
            if entry is None or entry[0] is not quotas:  # the book made a new tuple: changed
                entry = compiled[event.tenant_id] = (quotas, tuple(map(self._plan, quotas)))
            for plan in entry[1]:
                if plan.model is not None and plan.model != event.model:
                    continue
                key = self._count(plan, event, time_ms, emitted_at, alerts)
                if key is not None:
                    touched.add(key)
        self.stats["events"] += count
        delta: dict[str, dict[str, Any] | None] = {k: self.cells[k].dump() for k in touched}
        delta.update(dict.fromkeys(self._evict()))
        self.applied_at_ms = emitted_at
        delta[WATERMARK_KEY] = {"time_ms": self.watermark_ms, "applied_at_ms": emitted_at}
        return alerts, delta

    def _plan(self, quota: QuotaDefinition) -> QuotaPlan:
        horizon = self.rate_late_horizon_ms if quota.period == "minute" else self.late_horizon_ms
        return QuotaPlan(quota, horizon)

    def _count(
        self, plan: QuotaPlan, event: Any, time_ms: int, emitted_at: int, alerts: list[QuotaAlert]
    ) -> str | None:
        if plan.cell_gen == self._generation and plan.cell_start <= time_ms < plan.cell_end:
            start, end, key, cell = plan.cell_start, plan.cell_end, plan.cell_key, plan.cell
        else:
            start, end = plan.bounds_at(time_ms)
            key, cell = "", None
        if end + plan.horizon_ms < self.watermark_ms:
            self.stats["late_ignored"] += 1  # its cell may be evicted: never alert twice
            return None
        added = plan.usage_of(event)
        if not added:
            return None
        if cell is None:  # the plan remembers its current cell until an eviction or load
            quota = plan.quota
            key = f"{quota.tenant_id}|{quota.name}|{start}"
            cell = self.cells.get(key)
            if cell is None:
                cell = self.cells[key] = _Cell(0, [], end, bool(plan.prices))
                self._expire(key, end + plan.horizon_ms)
            plan.remember(self._generation, start, end, key, cell)
        cell.usage += added
        for pct, bound in plan.bounds:
            if cell.usage >= bound and pct not in cell.crossed:
                cell.crossed.append(pct)
                usage = plan.to_decimal(cell.usage)
                alerts.append(_alert(plan.quota, start, end, pct, usage, time_ms, emitted_at))
        return key

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
        if gone:
            self._generation += 1  # plans may hold evicted cells
        return gone


def _time_ms(event: UsageLike) -> int:
    explicit = getattr(event, "time_ms", None)
    if isinstance(explicit, int):
        return explicit
    return int(event.time.timestamp() * 1000)


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
