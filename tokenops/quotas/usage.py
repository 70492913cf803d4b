"""Usage: what tokens add to a quota, computed here and nowhere else, in one exact unit.

A token quota counts tokens; a cost budget counts picos (1e-12) of its currency. The
contract allows at most 6 decimals in a price per million tokens and in a budget's limit
(`QuotaDefinition`), so a price per token is a whole number of picos and usage is always
an integer: adding and comparing never round. Readers convert at their edge: the worker
keeps a cost budget's usage as a decimal string in its state (`dump`), an alert carries
`to_decimal`, the Prometheus sink exports a float ratio.

Tokens come as five sums in `TOKEN_COLUMNS` order (one event, a record's columns, a
window's totals); a quota's `weights` turn them into its usage.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from decimal import Decimal
from functools import lru_cache
from operator import mul

from tokenops.schemas.columns import TOKEN_COLUMNS
from tokenops.schemas.quota import QuotaDefinition

PICOS = 10**12


def usage_of(quota: QuotaDefinition, token_sums: Sequence[int]) -> int:
    """What tokens (five sums in `TOKEN_COLUMNS` order) add to `quota`, in its unit."""
    return sum(map(mul, token_sums, weights(quota)))


def weights(quota: QuotaDefinition) -> tuple[int, ...]:
    """Per token column (`TOKEN_COLUMNS` order): 1 if `quota` counts it, or its price in
    picos per token. Trailing zeros are left out (`map` stops at the shorter): the
    default quota reads two columns, not five."""
    prices = quota.prices_per_million
    return _weights(tuple(quota.token_types), None if prices is None else tuple(prices.items()))


def scale(quota: QuotaDefinition) -> int:
    """Units per token or per currency unit: 1, or `PICOS` for a cost budget."""
    return PICOS if quota.is_cost else 1


def exact(quota: QuotaDefinition, amount: Decimal | int | str) -> int:
    """A usage or limit in tokens or currency units -> this quota's integer unit, rounded
    up (a limit is whole in it; an amount read from elsewhere may carry more decimals)."""
    return math.ceil(Decimal(amount) * scale(quota))


def to_decimal(quota: QuotaDefinition, usage: int) -> Decimal:
    """A usage in this quota's unit -> tokens, or currency units for a cost budget."""
    return Decimal(usage) / PICOS if quota.is_cost else Decimal(usage)


def dump(usage: int, cost: bool) -> int | str:
    """A usage as the worker's state keeps it: tokens, or a cost as a decimal string
    (picos to text without Decimal arithmetic: this runs for every changed cell)."""
    if not cost:
        return usage
    whole, picos = divmod(usage, PICOS)
    return f"{whole}.{picos:012d}".rstrip("0").rstrip(".")


def load(raw: int | str) -> tuple[int, bool]:
    """(usage, is a cost) of a usage as `dump` wrote it."""
    if isinstance(raw, str):
        return _exact_int(Decimal(raw) * PICOS), True
    return int(raw), False


@lru_cache(maxsize=4096)
def bounds(limit: Decimal, cost: bool, thresholds: tuple[int, ...]) -> tuple[tuple[int, int], ...]:
    """(pct, bound) per threshold, ascending: usage * 100 >= limit * pct as an integer
    bound in the quota's unit, ceil(limit * scale * pct / 100)."""
    unit = PICOS if cost else 1
    return tuple((pct, -(-_exact_int(limit * unit * pct) // 100)) for pct in thresholds)


# Many tenants share the same token types and prices: compile each combination once.
@lru_cache(maxsize=4096)
def _weights(
    token_types: tuple[str, ...], prices: tuple[tuple[str, Decimal], ...] | None
) -> tuple[int, ...]:
    if prices is None:
        per_column = dict.fromkeys(token_types, 1)
    else:  # price per million tokens -> picos per token: x 1e12 / 1e6
        per_column = {name: _exact_int(price * 10**6) for name, price in prices}
    weights = [per_column.get(name, 0) for name in TOKEN_COLUMNS]
    while weights and not weights[-1]:
        weights.pop()
    return tuple(weights)


def _exact_int(value: Decimal) -> int:
    if value != value.to_integral_value():
        raise ValueError(f"{value} is not whole: prices and budgets take at most 6 decimals")
    return int(value)
