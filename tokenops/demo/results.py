"""What the demo reads back from ClickHouse, and how it checks that against the ledger."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from tokenops.schemas import TOKEN_TYPES
from tokenops.simulate.ledger import Ledger
from tokenops.sinks.clickhouse.invoice_model import Invoice
from tokenops.sinks.clickhouse.reader import BillingReader
from tokenops.sinks.clickhouse.settings import ClickHouseSettings

# Invoiced quantities are disjoint: cached input and reasoning output are billed apart
# from the plain input and output they are part of (docs/bi.md).
TenantModel = tuple[str, str]


@dataclass
class BillingReport:
    usage: dict[TenantModel, dict[str, int]] = field(default_factory=dict)
    invoices: dict[str, list[Invoice]] = field(default_factory=dict)
    reconcile_checks: list[str] = field(default_factory=list)
    differences: list[str] = field(default_factory=list)

    def tenant_totals(self) -> dict[str, dict[str, int]]:
        totals: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        for (tenant, _), counts in self.usage.items():
            for name, value in counts.items():
                totals[tenant][name] += value
        return {tenant: dict(counts) for tenant, counts in totals.items()}

    def amount(self, tenant: str) -> dict[str, Decimal]:
        out: dict[str, Decimal] = defaultdict(Decimal)
        for bill in self.invoices.get(tenant, []):
            for currency, value in bill.totals.items():
                out[currency] += value
        return dict(out)


def read_billing(
    ledger: Ledger,
    window_s: int,
    started: datetime,
    ended: datetime,
    state_dir: Path,
    url: str | None = None,
) -> BillingReport:
    """Usage by model, invoices, and reconciliation, for the ledger's tenants, from ClickHouse.

    `url` defaults to the demo's own embedded store under `state_dir`, whatever
    TOKENOPS_CLICKHOUSE_URL the shell holds."""
    store = url or f"chdb://{state_dir / 'clickhouse'}"
    reader = BillingReader(ClickHouseSettings(url=store), state_dir)
    expected = ledger.expected_windows(window_s)
    tenants = sorted({tenant for tenant, _, _ in expected})
    months = sorted({_month(start_ms) for _, _, start_ms in expected})
    first = min(start_ms for _, _, start_ms in expected)
    start = datetime.fromtimestamp(first / 1000, UTC).replace(minute=0, second=0, microsecond=0)
    end = max(ended, started) + timedelta(hours=1)
    report = BillingReport()
    for tenant in tenants:
        for row in reader.usage(tenant, start, end, "model").rows:
            report.usage[(tenant, row["model"])] = {
                name: int(row[name]) for name in (*TOKEN_TYPES, "event_count")
            }
        report.invoices[tenant] = [reader.invoice(tenant, month) for month in months]
    report.reconcile_checks, differences = reader.reconcile(start, end)
    report.differences = [str(d) for d in differences]
    report.differences += compare_with_ledger(report, expected)
    return report


def compare_with_ledger(
    report: BillingReport, expected: Mapping[tuple[str, str, int], Sequence[int]]
) -> list[str]:
    """Every difference between ClickHouse's usage and invoices and the ledger."""
    want: dict[TenantModel, list[int]] = defaultdict(lambda: [0] * 6)
    for (tenant, model, _), totals in expected.items():
        for i, value in enumerate(totals):
            want[(tenant, model)][i] += value
    problems = []
    for key in sorted(want.keys() | report.usage.keys()):
        have = report.usage.get(key)
        names = (*TOKEN_TYPES, "event_count")
        wanted_usage = dict(zip(names, want.get(key, [0] * 6), strict=True))
        if have != wanted_usage:
            problems.append(
                f"usage of {key[0]} / {key[1]}: ClickHouse {have}, ledger {wanted_usage}"
            )
    for tenant, bills in report.invoices.items():
        billed: dict[TenantModel, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        for bill in bills:
            for line in bill.lines:
                billed[(tenant, line.model)][line.token_type] += line.quantity
            for model, token_type, quantity in bill.unpriced:
                problems.append(f"{tenant} {model} {token_type}: {quantity} tokens have no price")
        for (t, model), totals in want.items():
            if t != tenant:
                continue
            inp, out, read, created, reasoning, _ = totals
            quantities = (inp - read - created, out - reasoning, read, created, reasoning)
            wanted = {k: q for k, q in zip(TOKEN_TYPES, quantities, strict=True) if q}
            got = {k: q for k, q in billed[(tenant, model)].items() if q}
            if got != wanted:
                problems.append(f"invoice of {tenant} / {model}: billed {got}, ledger {wanted}")
    return problems


def _month(start_ms: int) -> date:
    return datetime.fromtimestamp(start_ms / 1000, UTC).date().replace(day=1)
