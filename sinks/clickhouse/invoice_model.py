"""The invoice as data: lines, adjustment lines, and what makes it final."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import orjson

from tokenops.sinks.clickhouse.finality import Finality


@dataclass(frozen=True)
class InvoiceLine:
    """One model's usage of one token type at one unit price, in one region ('' for
    events without a region)."""

    model: str
    token_type: str
    quantity: int
    unit_price_per_million: Decimal
    currency: str
    amount: Decimal  # rounded half-up to the cent
    exact_amount: Decimal
    region: str = ""


@dataclass(frozen=True)
class AdjustmentLine:
    """A late correction to a closed month, billed on a later invoice."""

    original_invoice: str
    original_month: str  # YYYY-MM
    window_start: str  # ISO, UTC
    model: str
    token_type: str
    event_count: int  # the events the correction added to the window
    quantity: int  # may be negative
    unit_price_per_million: Decimal
    currency: str
    amount: Decimal
    exact_amount: Decimal
    region: str = ""


@dataclass
class Invoice:
    tenant_id: str
    month: date
    time_zone: str = "UTC"
    lines: list[InvoiceLine] = field(default_factory=list)
    adjustments: list[AdjustmentLine] = field(default_factory=list)
    unpriced: list[tuple[str, str, int]] = field(default_factory=list)  # model, type, qty
    number: str | None = None  # set once the month closed
    content_hash: str | None = None
    closed_at: datetime | None = None
    finality: Finality = field(default_factory=Finality)

    @property
    def final(self) -> bool:
        return self.number is not None

    @property
    def totals(self) -> dict[str, Decimal]:
        """Total per currency: the sum of the rounded lines and adjustments."""
        out: dict[str, Decimal] = {}
        billed: list[tuple[str, Decimal]] = [(x.currency, x.amount) for x in self.lines]
        billed += [(x.currency, x.amount) for x in self.adjustments]
        for currency, amount in billed:
            out[currency] = out.get(currency, Decimal("0.00")) + amount
        return out


def _text(line: object) -> dict[str, object]:
    """A line as JSON text. A line's `region` is left out when it is '': an invoice
    without regions is the document it was before lines had a region (and its hash)."""
    return {
        k: str(v) if isinstance(v, Decimal) else v
        for k, v in line.__dict__.items()
        if k != "region" or v
    }


def invoice_document(bill: Invoice) -> dict[str, Any]:
    """What closing a month freezes, and hashes: everything billed, nothing about when."""
    return {
        "tenant_id": bill.tenant_id,
        "month": bill.month.isoformat()[:7],
        "time_zone": bill.time_zone,
        "lines": [_text(line) for line in bill.lines],
        "adjustments": [_text(line) for line in bill.adjustments],
        "unpriced": [list(u) for u in bill.unpriced],
        "totals": {currency: str(total) for currency, total in bill.totals.items()},
    }


def content_hash(document: dict[str, Any]) -> str:
    """SHA-256 of the document's canonical JSON (sorted keys, no spaces)."""
    return hashlib.sha256(orjson.dumps(document, option=orjson.OPT_SORT_KEYS)).hexdigest()


def invoice_to_json(bill: Invoice) -> dict[str, Any]:
    return {
        **invoice_document(bill),
        "number": bill.number,
        "content_hash": bill.content_hash,
        "closed_at": bill.closed_at.isoformat() if bill.closed_at else None,
        **bill.finality.to_json(),
    }


def invoice_from_json(data: dict[str, Any]) -> Invoice:
    bill = Invoice(
        data["tenant_id"],
        date.fromisoformat(data["month"] + "-01"),
        data.get("time_zone", "UTC"),
        number=data.get("number"),
        content_hash=data.get("content_hash"),
        closed_at=datetime.fromisoformat(data["closed_at"]) if data.get("closed_at") else None,
        finality=Finality.from_json(data),
    )
    for line in data["lines"]:
        bill.lines.append(
            InvoiceLine(
                **{
                    **line,
                    "quantity": int(line["quantity"]),
                    **{k: Decimal(line[k]) for k in _DECIMALS},
                }
            )
        )
    for line in data.get("adjustments", []):
        bill.adjustments.append(
            AdjustmentLine(
                **{
                    **line,
                    "quantity": int(line["quantity"]),
                    "event_count": int(line["event_count"]),
                    **{k: Decimal(line[k]) for k in _DECIMALS},
                }
            )
        )
    bill.unpriced = [(m, t, int(q)) for m, t, q in data["unpriced"]]
    return bill


_DECIMALS = ("unit_price_per_million", "amount", "exact_amount")
