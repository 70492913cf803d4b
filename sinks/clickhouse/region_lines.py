"""An invoice's lines by region, whose cents add up to the line without regions.

Each line is rounded half-up to the cent, and the invoice total is the sum of its lines.
Rounding every region's share on its own would move the total by up to a cent per
region a model was used in. Instead the line of a model, token type and unit price is
rounded once, over all regions (what the invoice billed before lines had a region), and
its cents are shared among the regions by largest remainder: each region gets its exact
amount rounded down to the cent, and the cents left go one each to the regions with the
largest remainders (ties: in region order). Every region's amount is within a cent of
its exact amount; the lines of a model add up to its rounded line; the total is
unchanged by the split.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import ROUND_FLOOR, ROUND_HALF_UP, Decimal

from tokenops.sinks.clickhouse.invoice_model import InvoiceLine

CENT = Decimal("0.01")
# (region, model, token type, currency, unit price, quantity, exact amount)
PricedRow = tuple[str, str, str, str, Decimal, int, Decimal]


def region_lines(rows: Iterable[PricedRow]) -> list[InvoiceLine]:
    """The invoice lines of priced rows, ordered by model, token type, unit price and
    region; see the module doc for how the cents are shared."""
    groups: dict[tuple[str, str, str, Decimal], list[PricedRow]] = {}
    for row in rows:
        _, model, token_type, currency, unit, _, _ = row
        groups.setdefault((model, token_type, currency, unit), []).append(row)
    lines: list[InvoiceLine] = []
    for (model, token_type, currency, unit), group in sorted(
        groups.items(), key=lambda item: (item[0][0], item[0][1], item[0][3], item[0][2])
    ):
        group.sort(key=lambda row: row[0])
        exact = [row[6] for row in group]
        rounded = sum(exact, Decimal(0)).quantize(CENT, rounding=ROUND_HALF_UP)
        shares = [x.quantize(CENT, rounding=ROUND_FLOOR) for x in exact]
        left = int((rounded - sum(shares, Decimal(0))) / CENT)
        by_remainder = sorted(range(len(group)), key=lambda i: (shares[i] - exact[i], i))
        for i in by_remainder[:left]:
            shares[i] += CENT
        for row, share in zip(group, shares, strict=True):
            region, _, _, _, _, quantity, amount = row
            lines.append(
                InvoiceLine(model, token_type, quantity, unit, currency, share, amount, region)
            )
    return lines
