"""Reads for BI and billing: usage by model/day/hour, and invoices from `invoice_lines`.

Every function takes a clickhouse-connect client and returns plain data (Decimal amounts,
never float), so the CLI, the sink's query endpoint and tests share one implementation.
Tenant values are always bound parameters.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Literal

from clickhouse_connect.driver.client import Client

from tokenops.schemas import TOKEN_TYPES

UsageBy = Literal["model", "day", "hour"]
CENT = Decimal("0.01")

_SUMS = ", ".join(f"sum({t}) AS {t}" for t in TOKEN_TYPES) + ", sum(event_count) AS event_count"
_USAGE = {
    "hour": f"""SELECT hour AS bucket, model, {_SUMS} FROM hourly_usage
        WHERE tenant_id = {{tenant:String}} AND hour >= {{start:DateTime('UTC')}}
          AND hour < {{end:DateTime('UTC')}}
        GROUP BY bucket, model ORDER BY bucket, model""",
    "day": f"""SELECT day AS bucket, model, {_SUMS} FROM daily_usage
        WHERE tenant_id = {{tenant:String}} AND day >= toDate({{start:DateTime('UTC')}})
          AND day < toDate({{end:DateTime('UTC')}})
        GROUP BY bucket, model ORDER BY bucket, model""",
    "model": f"""SELECT model, {_SUMS} FROM hourly_usage
        WHERE tenant_id = {{tenant:String}} AND hour >= {{start:DateTime('UTC')}}
          AND hour < {{end:DateTime('UTC')}}
        GROUP BY model ORDER BY model""",
}


def usage(
    client: Client, tenant: str, start: datetime, end: datetime, by: UsageBy
) -> list[dict[str, Any]]:
    """Token totals of `tenant` in [start, end), UTC, grouped by model, day or hour."""
    result = client.query(_USAGE[by], parameters={"tenant": tenant, "start": start, "end": end})
    return [dict(zip(result.column_names, row, strict=True)) for row in result.result_rows]


@dataclass(frozen=True)
class InvoiceLine:
    model: str
    token_type: str
    quantity: int
    unit_price_per_million: Decimal
    currency: str
    amount: Decimal  # rounded half-up to the cent
    exact_amount: Decimal


@dataclass
class Invoice:
    tenant_id: str
    month: date
    lines: list[InvoiceLine] = field(default_factory=list)
    unpriced: list[tuple[str, str, int]] = field(default_factory=list)  # model, type, qty

    @property
    def totals(self) -> dict[str, Decimal]:
        """Total per currency: the sum of the rounded lines, so lines add up to it."""
        out: dict[str, Decimal] = {}
        for line in self.lines:
            out[line.currency] = out.get(line.currency, Decimal("0.00")) + line.amount
        return out


_INVOICE = """
SELECT model, token_type, priced, currency, unit_price_per_million, quantity, amount
FROM invoice_lines
WHERE tenant_id = {tenant:String} AND month = {month:Date}
ORDER BY model, token_type, unit_price_per_million
"""


def invoice(client: Client, tenant: str, month: date) -> Invoice:
    """The invoice of `tenant` for the calendar month (UTC) starting at `month`."""
    result = client.query(_INVOICE, parameters={"tenant": tenant, "month": month.replace(day=1)})
    bill = Invoice(tenant, month.replace(day=1))
    for model, token_type, priced, currency, unit, quantity, amount in result.result_rows:
        if not priced:
            bill.unpriced.append((model, token_type, int(quantity)))
            continue
        exact = Decimal(amount)
        bill.lines.append(
            InvoiceLine(
                model,
                token_type,
                int(quantity),
                _plain(Decimal(unit)),
                currency,
                exact.quantize(CENT, rounding=ROUND_HALF_UP),
                exact,
            )
        )
    return bill


def _plain(value: Decimal) -> Decimal:
    """Without trailing zeros and without an exponent: 10.000000000 -> 10, 2.50 -> 2.5."""
    return Decimal(format(value.normalize(), "f"))
