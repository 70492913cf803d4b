"""A quota compiled for the columnar evaluator: integer units, cached period bounds.

Token quotas count tokens; cost budgets count picos of their currency (1e-12), exact for
prices with up to 6 decimals per million tokens, so the evaluator adds and compares
integers only. Thresholds become integer bounds in the same unit, ascending.

A plan reads a record's token columns (`EventColumns`) whole: `weights` turn the
record's five column sums into its usage, `total` is the usage of every event of a
record, `usages` the per-event usage of some events, needed only to find the event that
crossed a threshold.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from decimal import Decimal
from functools import lru_cache
from itertools import repeat
from operator import add, attrgetter, mul
from typing import Any

from tokenops.schemas.columns import TOKEN_COLUMNS, EventColumns
from tokenops.schemas.quota import QuotaDefinition

PICOS = 10**12
_SHARED: dict[tuple[str, str], tuple[int, int]] = {}  # (period, timezone) -> last bounds


class QuotaPlan:
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
        "horizon_ms",
        "low",
        "model",
        "prices",
        "quota",
        "tokens",
        "weights",
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
        # One C-level attrgetter call per record gives the token columns this quota reads.
        names = self.tokens or tuple(name for name, _ in self.prices)
        self._columns: Callable[[EventColumns], tuple[list[int], ...]] = _tuple_getter(names)
        self._weights = tuple(price for _, price in self.prices)
        # Per token column (`EventColumns.tokens()` order): 1 if counted, or picos per
        # token; a record's usage is then sum(map(mul, column_sums, weights)).
        # Trailing zeros are left out (map stops at the shorter): the default quota reads
        # two columns, not five.
        per_column = dict(self.prices) if self.prices else dict.fromkeys(self.tokens, 1)
        weights = [per_column.get(name, 0) for name in TOKEN_COLUMNS]
        while weights and not weights[-1]:
            weights.pop()
        self.weights = tuple(weights)
        self.bounds = _bounds(quota.limit, quota.is_cost, quota.thresholds_pct)
        self.low = self.bounds[0][1]  # below the lowest bound no threshold needs a look
        self._start, self._end = 0, -1
        # The evaluator's cell of the current period [cell_start, cell_end) (none yet);
        # once the watermark passes `cell_late_after` (end + horizon) its events are late.
        self.cell: Any = None
        self.cell_key, self.cell_start, self.cell_end = "", 0, -1
        self.cell_late_after = -1

    def remember(self, start: int, end: int, key: str, cell: Any) -> None:
        self.cell_start, self.cell_end = start, end
        self.cell_key, self.cell = key, cell
        self.cell_late_after = end + self.horizon_ms

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
            # Every quota with this period and timezone shares the boundaries: computing
            # a local midnight is the costly part, so it is done once per period change.
            zone = (self.quota.period, self.quota.timezone)
            start, end = _SHARED.get(zone, (0, -1))
            if not start <= time_ms < end:
                start, end = _SHARED[zone] = self.quota.period_bounds(time_ms)
            self._start, self._end = start, end
        return self._start, self._end

    def to_decimal(self, usage: int) -> Decimal:
        return Decimal(usage) / PICOS if self.prices else Decimal(usage)


def _tuple_getter(names: tuple[str, ...]) -> Callable[[Any], tuple[list[int], ...]]:
    """attrgetter, always returning a tuple (it returns a bare value for one name)."""
    if not names:
        return lambda _record: ()
    getter: Callable[[Any], Any] = attrgetter(*names)
    if len(names) > 1:
        return getter
    return lambda record: (getter(record),)


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
