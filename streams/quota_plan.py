"""A quota compiled for the per-event path: integer units, cached period bounds.

Token quotas count tokens; cost budgets count picos of their currency (1e-12), exact for
prices with up to 6 decimals per million tokens, so the per-event path adds and compares
integers only. Thresholds become integer bounds in the same unit.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from tokenops.schemas.quota import QuotaDefinition

PICOS = 10**12
_SHARED: dict[tuple[str, str], tuple[int, int]] = {}  # (period, timezone) -> last bounds


class QuotaPlan:
    __slots__ = ("_end", "_start", "bounds", "horizon_ms", "model", "prices", "quota", "tokens")

    def __init__(self, quota: QuotaDefinition, horizon_ms: int) -> None:
        self.quota = quota
        self.model = quota.model
        self.horizon_ms = horizon_ms
        self.tokens: tuple[str, ...] = ()
        self.prices: tuple[tuple[str, int], ...] = ()
        if quota.prices_per_million is None:
            self.tokens = tuple(quota.token_types)
            scale = Decimal(1)
        else:  # picos per token = price per million tokens * 1e6
            self.prices = tuple(
                (name, _exact_int(price * 10**6, quota))
                for name, price in quota.prices_per_million.items()
                if price
            )
            scale = Decimal(PICOS)
        # usage * 100 >= limit * pct, in integer units: bound = ceil(limit * scale * pct / 100)
        self.bounds = tuple(
            (pct, -(-_exact_int(quota.limit * scale * pct, quota) // 100))
            for pct in quota.thresholds_pct
        )
        self._start, self._end = 0, -1

    def usage_of(self, event: Any) -> int:
        if self.prices:
            return sum(getattr(event, name) * price for name, price in self.prices)
        return sum(getattr(event, name) for name in self.tokens)

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

    def from_state(self, value: int | str) -> int:
        if isinstance(value, str):
            return _exact_int(Decimal(value) * PICOS, self.quota)
        return int(value)


def _exact_int(value: Decimal, quota: QuotaDefinition) -> int:
    if value != value.to_integral_value():
        raise ValueError(f"quota {quota.key}: prices need at most 6 decimals per million tokens")
    return int(value)
