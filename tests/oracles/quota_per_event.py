"""The per-event quota evaluator that `QuotaEvaluator` replaced: the exactness oracle.

A verbatim copy of the evaluator (and its compiled plan) as it was when the worker handed
processors lists of `UsageEvent`s, one event and quota at a time. The columnar evaluator
must give exactly its alerts and state; `bench.bench_quota_evaluator` runs it as the
"before" figure in the same process.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from functools import lru_cache
from itertools import groupby
from operator import attrgetter, mul
from typing import Any, Protocol

from tokenops.quotas.book import QuotaBook
from tokenops.quotas.counter import shared_period_bounds
from tokenops.schemas.columns import EventColumns
from tokenops.schemas.quota import QuotaAlert, QuotaDefinition

PICOS = 10**12


class QuotaPlan:
    __slots__ = (
        "_end",
        "_getter",
        "_start",
        "_weights",
        "bounds",
        "cell",
        "cell_end",
        "cell_gen",
        "cell_key",
        "cell_start",
        "horizon_ms",
        "model",
        "prices",
        "quota",
        "tokens",
    )

    def __init__(self, quota: QuotaDefinition, horizon_ms: int) -> None:
        self.quota = quota
        self.model = quota.model
        self.horizon_ms = horizon_ms
        self.tokens: tuple[str, ...] = ()
        self.prices: tuple[tuple[str, int], ...] = ()
        if quota.prices_per_million is None:
            self.tokens = tuple(quota.token_types)
        else:
            self.prices = _picos_per_token(tuple(quota.prices_per_million.items()))
        # One C-level attrgetter call per event instead of a generator of getattr calls.
        names = self.tokens or tuple(name for name, _ in self.prices)
        self._getter: Callable[[Any], tuple[int, ...]] = _tuple_getter(names)
        self._weights = tuple(price for _, price in self.prices)
        self.bounds = _bounds(quota.limit, quota.is_cost, quota.thresholds_pct)
        self._start, self._end = 0, -1
        # The evaluator's cell of the current period, valid while `cell_gen` matches.
        self.cell: Any = None
        self.cell_key, self.cell_start, self.cell_end, self.cell_gen = "", 0, -1, -1

    def remember(self, generation: int, start: int, end: int, key: str, cell: Any) -> None:
        self.cell_gen, self.cell_start, self.cell_end = generation, start, end
        self.cell_key, self.cell = key, cell

    def usage_of(self, event: Any) -> int:
        if self._weights:
            return sum(map(mul, self._getter(event), self._weights))
        return sum(self._getter(event))

    def bounds_at(self, time_ms: int) -> tuple[int, int]:
        """[start, end) of the period holding `time_ms`; the last answer is reused."""
        if not self._start <= time_ms < self._end:
            self._start, self._end = shared_period_bounds(self.quota, time_ms)
        return self._start, self._end

    def to_decimal(self, usage: int) -> Decimal:
        return Decimal(usage) / PICOS if self.prices else Decimal(usage)


def _tuple_getter(names: tuple[str, ...]) -> Callable[[Any], tuple[int, ...]]:
    """attrgetter, always returning a tuple (it returns a bare value for one name)."""
    if not names:
        return lambda _event: ()
    getter: Callable[[Any], Any] = attrgetter(*names)
    if len(names) > 1:
        return getter
    return lambda event: (getter(event),)


# Many tenants share the same limits and prices: compile each combination once.
@lru_cache(maxsize=4096)
def _picos_per_token(prices: tuple[tuple[str, Decimal], ...]) -> tuple[tuple[str, int], ...]:
    """Price per million tokens -> picos per token (x 1e6); the schema allows 6 decimals."""
    return tuple((name, _exact_int(price * 10**6)) for name, price in prices if price)


@lru_cache(maxsize=4096)
def _bounds(limit: Decimal, cost: bool, thresholds: tuple[int, ...]) -> tuple[tuple[int, int], ...]:
    """usage * 100 >= limit * pct as integer bounds: ceil(limit * scale * pct / 100)."""
    scale = PICOS if cost else 1
    return tuple((pct, -(-_exact_int(limit * scale * pct) // 100)) for pct in thresholds)


def _exact_int(value: Decimal) -> int:
    if value != value.to_integral_value():
        raise ValueError(f"{value} is not whole: prices and budgets take at most 6 decimals")
    return int(value)


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
class PerEventEvaluator:
    """The quota evaluator as it was before columns: one step per (event, quota)."""

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
                crossing = {"period_start_ms": start, "period_end_ms": end, "threshold_pct": pct}
                usage = {"usage": plan.to_decimal(cell.usage)}
                stamps = {"time_ms": time_ms, "emitted_at_ms": emitted_at}
                alerts.append(_alert(plan.quota, **crossing, **usage, **stamps))
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


def _alert(quota: QuotaDefinition, **crossing: Any) -> QuotaAlert:
    """The crossing as the quota-alerts topic documents it: the quota's own fields, then
    the crossing's (period, threshold, usage, times), in the quota's unit (a cost
    budget's currency, else tokens)."""
    unit = quota.currency if quota.is_cost and quota.currency else "tokens"
    own = quota.model_dump(include={"tenant_id", "model", "period", "limit"})
    return QuotaAlert(quota=quota.name, unit=unit, **own, **crossing)


_TOKENS = (
    "input_tokens",
    "output_tokens",
    "cache_read_input_tokens",
    "cache_creation_input_tokens",
    "reasoning_output_tokens",
)


def records(events: Iterable[Any]) -> list[EventColumns]:
    """Events as input records: each run of consecutive events of one tenant is one record.

    The events need `tenant_id`, `time_ms`, `model` and the five token counts; the other
    columns get placeholder values the evaluator does not read."""
    out: list[EventColumns] = []
    for tenant, run in groupby(events, attrgetter("tenant_id")):
        part = list(run)
        n = len(part)
        out.append(
            EventColumns(
                tenant_id=tenant,
                id=[f"e{i}" for i in range(n)],
                source=["//test"] * n,
                time_ms=[e.time_ms for e in part],
                model=[e.model for e in part],
                provider=["p"] * n,
                operation=["chat"] * n,
                **{name: [getattr(e, name) for e in part] for name in _TOKENS},
                project_id=[None] * n,
                agent_id=[None] * n,
                user_id=[None] * n,
                api_key_id=[None] * n,
                region=[None] * n,
                node_id=[None] * n,
            )
        )
    return out
