"""JSON forms of billing results, shared by the sink's endpoint and the CLI."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from tokenops.sinks.clickhouse.billing import Invoice, InvoiceLine
from tokenops.sinks.clickhouse.reconcile import Difference


def parse_time(text: str) -> datetime:
    """A UTC date (2026-11-01) or ISO time; naive values are UTC."""
    moment = datetime.fromisoformat(text)
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def invoice_to_json(bill: Invoice) -> dict[str, Any]:
    return {
        "tenant_id": bill.tenant_id,
        "month": bill.month.isoformat()[:7],
        "lines": [
            {k: str(v) if isinstance(v, Decimal) else v for k, v in line.__dict__.items()}
            for line in bill.lines
        ],
        "unpriced": [list(u) for u in bill.unpriced],
        "totals": {currency: str(total) for currency, total in bill.totals.items()},
    }


def invoice_from_json(data: dict[str, Any]) -> Invoice:
    bill = Invoice(data["tenant_id"], date.fromisoformat(data["month"] + "-01"))
    for line in data["lines"]:
        bill.lines.append(
            InvoiceLine(
                model=line["model"],
                token_type=line["token_type"],
                quantity=int(line["quantity"]),
                unit_price_per_million=Decimal(line["unit_price_per_million"]),
                currency=line["currency"],
                amount=Decimal(line["amount"]),
                exact_amount=Decimal(line["exact_amount"]),
            )
        )
    bill.unpriced = [(m, t, int(q)) for m, t, q in data["unpriced"]]
    return bill


def differences_from_json(items: list[dict[str, Any]]) -> list[Difference]:
    return [Difference(**item) for item in items]
