"""Quota definitions (what a tenant may use) and quota alerts (a threshold was crossed).

A quota limits one tenant, optionally one of its models, over a period: a minute (a rate),
a day or a calendar month, in UTC or in the tenant's timezone. It limits tokens (by
default `input_tokens + output_tokens`, which already include cached and reasoning
tokens) or, with `prices_per_million`, a cost budget in a currency.

Definitions travel on the compacted quota topic, key `tenant|name`; a tombstone deletes.
Alerts travel on the quota-alerts topic with the deterministic key
`tenant|quota|period_start_ms|threshold_pct`, so a re-emitted crossing is recognisable.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import orjson
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

QUOTA_SCHEMA_VERSION = 1
Period = Literal["minute", "day", "month"]
TokenType = Literal[
    "input_tokens",
    "output_tokens",
    "cache_read_input_tokens",
    "cache_creation_input_tokens",
    "reasoning_output_tokens",
]
_NAME = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$"


def quota_key(tenant_id: str, name: str) -> str:
    """The quota topic key `tenant|name`."""
    return f"{tenant_id}|{name}"


def alert_key(tenant_id: str, quota: str, period_start_ms: int, threshold_pct: int) -> str:
    """The quota-alerts key: one value per crossing, so duplicates share it."""
    return f"{tenant_id}|{quota}|{period_start_ms}|{threshold_pct}"


class QuotaDefinition(BaseModel):
    """One limit of one tenant (optionally one model) over one kind of period."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    schema_version: Literal[1] = 1
    tenant_id: str = Field(pattern=_NAME)
    name: str = Field(pattern=_NAME, description="Unique per tenant, e.g. 'daily-tokens'.")
    period: Period
    limit: Decimal = Field(gt=0, description="Tokens, or currency units for a cost budget.")
    model: str | None = Field(default=None, description="Only this model's usage counts.")
    timezone: str = "UTC"
    token_types: tuple[TokenType, ...] = ("input_tokens", "output_tokens")
    prices_per_million: dict[TokenType, Decimal] | None = Field(
        default=None, description="Makes this a cost budget: price per 1M tokens by type."
    )
    currency: str | None = None
    thresholds_pct: tuple[int, ...] = (50, 80, 100)

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown IANA timezone {value!r}") from exc
        return value

    @field_validator("thresholds_pct")
    @classmethod
    def _sorted_thresholds(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if not value or any(t <= 0 or t > 1000 for t in value):
            raise ValueError("thresholds_pct must be 1..1000 percent, at least one")
        return tuple(sorted(set(value)))

    @model_validator(mode="after")
    def _cost_or_tokens(self) -> QuotaDefinition:
        prices = self.prices_per_million
        if prices is not None and self.currency is None:
            raise ValueError("a cost budget (prices_per_million) needs a currency")
        if prices is not None and any(p < 0 for p in prices.values()):
            raise ValueError("prices_per_million must not be negative")
        # The evaluator counts cost in integer picos (1e-12) of the currency.
        if prices is not None and any(_decimals(p) > 6 for p in prices.values()):
            raise ValueError("prices_per_million take at most 6 decimals")
        if prices is not None and _decimals(self.limit) > 6:
            raise ValueError("a budget limit takes at most 6 decimals")
        if self.prices_per_million is None and self.limit != int(self.limit):
            raise ValueError("a token limit must be a whole number of tokens")
        return self

    @property
    def key(self) -> str:
        return quota_key(self.tenant_id, self.name)

    @property
    def is_cost(self) -> bool:
        return self.prices_per_million is not None

    def period_bounds(self, time_ms: int) -> tuple[int, int]:
        """[start, end) in UTC epoch ms of the period holding `time_ms`, in `timezone`."""
        return period_bounds(self.period, time_ms, self.timezone)

    def to_bytes(self) -> bytes:
        return orjson.dumps(self.model_dump(mode="json"))

    @classmethod
    def from_bytes(cls, value: bytes) -> QuotaDefinition:
        return cls.model_validate(orjson.loads(value))


def _decimals(value: Decimal) -> int:
    exponent = value.normalize().as_tuple().exponent
    return -exponent if isinstance(exponent, int) and exponent < 0 else 0


def period_bounds(period: Period, time_ms: int, timezone: str = "UTC") -> tuple[int, int]:
    """[start, end) in UTC epoch ms of the minute, day or month holding `time_ms`.

    Days and months start at local midnight in `timezone`, so a DST day lasts 23 or 25 h.
    """
    if period == "minute":
        start = time_ms - time_ms % 60_000
        return start, start + 60_000
    zone = UTC if timezone == "UTC" else ZoneInfo(timezone)
    local = datetime.fromtimestamp(time_ms / 1000, tz=UTC).astimezone(zone)
    if period == "day":
        first = local.replace(hour=0, minute=0, second=0, microsecond=0, tzinfo=None)
        after = first + timedelta(days=1)
    else:
        first = local.replace(day=1, hour=0, minute=0, second=0, microsecond=0, tzinfo=None)
        after = first.replace(year=first.year + first.month // 12, month=first.month % 12 + 1)
    return _epoch_ms(first.replace(tzinfo=zone)), _epoch_ms(after.replace(tzinfo=zone))


def _epoch_ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


class QuotaAlert(BaseModel):
    """A quota's usage reached `threshold_pct` of its limit in one period, exactly once."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    schema_version: Literal[1] = 1
    tenant_id: str
    quota: str
    model: str | None = None
    period: Period
    period_start_ms: int
    period_end_ms: int
    threshold_pct: int
    usage: Decimal
    limit: Decimal
    unit: str = Field(description="'tokens' or the budget's currency.")
    time_ms: int = Field(description="Event time of the event that crossed the threshold.")
    emitted_at_ms: int = Field(description="Wall-clock time of the evaluation.")

    @property
    def key(self) -> str:
        return alert_key(self.tenant_id, self.quota, self.period_start_ms, self.threshold_pct)

    @property
    def usage_ratio(self) -> float:
        return float(self.usage / self.limit)

    def to_bytes(self) -> bytes:
        return orjson.dumps(self.model_dump(mode="json"))

    @classmethod
    def from_bytes(cls, value: bytes) -> QuotaAlert:
        return cls.model_validate(orjson.loads(value))
