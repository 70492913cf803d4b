"""`tokenops clickhouse migrate`, `tokenops usage`, `tokenops invoice`, `tokenops reconcile`.

The reads open the billing store directly, or ask the running `tokenops sink clickhouse`
when it holds the embedded store (chDB allows one process per store).
"""

from __future__ import annotations

import csv
import sys
from datetime import date
from enum import StrEnum
from typing import Any

import orjson
import typer
from rich.console import Console
from rich.table import Table

from tokenops.cli.text import plain
from tokenops.settings import StackSettings, load
from tokenops.sinks.clickhouse import ClickHouseSettings, open_store
from tokenops.sinks.clickhouse.errors import ClickHouseError, PriceError
from tokenops.sinks.clickhouse.reader import BillingReader
from tokenops.sinks.clickhouse.service import prepare_store
from tokenops.sinks.clickhouse.wire import invoice_to_json, parse_time

app = typer.Typer(help="The billing store (ClickHouse or the embedded chDB store).")
console = Console()


class Format(StrEnum):
    table = "table"
    csv = "csv"
    json = "json"


class By(StrEnum):
    model = "model"
    day = "day"
    hour = "hour"


FORMAT = typer.Option(Format.table, "--format", help="table, csv or json.")
BY = typer.Option(By.model, "--by", help="model, day or hour.")


def _reader() -> BillingReader:
    return BillingReader(load(ClickHouseSettings), load(StackSettings).state_dir)


@app.command()
def migrate() -> None:
    """Apply pending schema migrations, the raw-event retention and deploy/prices.yaml."""
    settings = load(ClickHouseSettings)
    with open_store(settings, load(StackSettings).state_dir) as store:
        done = prepare_store(store, settings.prices_file)
        for change in done:
            console.print(f"applied {plain(change)}")
        console.print(
            f"{plain(store.description)}: schema up to date" + ("" if done else ", nothing to do")
        )


def usage(
    tenant: str = typer.Option(..., "--tenant", help="The tenant id."),
    start: str = typer.Option(..., "--from", help="UTC date or time, inclusive."),
    end: str = typer.Option(..., "--to", help="UTC date or time, exclusive."),
    by: By = BY,
    fmt: Format = FORMAT,
) -> None:
    """Token totals of one tenant in [from, to), by model, day or hour (UTC)."""
    rows = _reader().usage(tenant, _time(start, "--from"), _time(end, "--to"), by.value)
    if not rows and fmt is Format.table:
        console.print(f"no usage for {plain(tenant)} in {plain(f'[{start}, {end})')}")
        return
    _emit(rows, f"usage of {tenant} by {by.value}", fmt)


def invoice(
    tenant: str = typer.Option(..., "--tenant", help="The tenant id."),
    month: str = typer.Option(..., "--month", help="The month, e.g. 2026-11 (UTC)."),
    fmt: Format = FORMAT,
) -> None:
    """One tenant's invoice: a line per model and token type, and the total.

    Amounts are exact Decimals rounded half-up to the cent per line; the total is the sum
    of the lines. Usage without a price in effect is an error (exit 1).
    """
    try:
        first = date.fromisoformat(month + "-01")
    except ValueError:
        raise ClickHouseError(f"--month={month!r}: expected YYYY-MM, e.g. 2026-11") from None
    bill = _reader().invoice(tenant, first)
    lines = [
        {
            "model": line.model,
            "token_type": line.token_type,
            "quantity": line.quantity,
            "unit_price_per_million": line.unit_price_per_million,
            "currency": line.currency,
            "amount": line.amount,
        }
        for line in bill.lines
    ]
    if fmt is Format.json:
        sys.stdout.write(orjson.dumps(invoice_to_json(bill), option=orjson.OPT_INDENT_2).decode())
        sys.stdout.write("\n")
    elif not lines and not bill.unpriced and fmt is Format.table:
        console.print(f"no billable usage for {plain(tenant)} in {plain(month)}")
    else:
        for currency, total in bill.totals.items():
            lines.append({"model": "TOTAL", "currency": currency, "amount": total})
        _emit(lines, f"invoice {tenant} {month}", fmt)
    if bill.unpriced:
        missing = ", ".join(f"{m}/{t} ({q} tokens)" for m, t, q in bill.unpriced)
        raise PriceError(
            f"usage without a price in effect: {missing}",
            hint="add the model to deploy/prices.yaml and run `tokenops clickhouse migrate`",
        )


def reconcile(
    start: str = typer.Option(..., "--from", help="UTC date or time, inclusive."),
    end: str = typer.Option(..., "--to", help="UTC date or time, exclusive."),
    fmt: Format = FORMAT,
) -> None:
    """Compare raw events, window totals and hour/day/month rollups; exit 1 on a difference."""
    checks, differences = _reader().reconcile(_time(start, "--from"), _time(end, "--to"))
    rows = [d.__dict__ for d in differences]
    if rows or fmt is not Format.table:
        _emit(rows, "reconciliation differences", fmt)
    if fmt is Format.table:
        verdict = f"{len(differences)} differences" if differences else "[green]clean[/]"
        console.print(f"checked: {'; '.join(checks)}: {verdict}")
    if differences:
        raise typer.Exit(1)


def _time(text: str, option: str) -> Any:
    try:
        return parse_time(text)
    except ValueError:
        raise ClickHouseError(f"{option}={text!r}: expected a UTC date or ISO time") from None


def _emit(rows: list[dict[str, Any]], title: str, fmt: Format) -> None:
    columns = list(dict.fromkeys(k for row in rows for k in row))
    if fmt is Format.json:
        sys.stdout.write(orjson.dumps(rows, default=str, option=orjson.OPT_INDENT_2).decode())
        sys.stdout.write("\n")
    elif fmt is Format.csv:
        writer = csv.DictWriter(sys.stdout, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows({k: str(v) for k, v in row.items()} for row in rows)
    else:
        table = Table(title=plain(title))
        for column in columns:
            numeric = (rows and isinstance(rows[0].get(column), int | float)) or column == "amount"
            table.add_column(
                plain(_SHORT.get(column, column)),
                justify="right" if numeric else "left",
                overflow="fold",
            )
        for row in rows:
            table.add_row(*(_cell(row.get(c)) for c in columns))
        console.print(table)


# Table headers only; csv and json keep the full column names.
_SHORT = {
    "input_tokens": "input",
    "output_tokens": "output",
    "cache_read_input_tokens": "cache read",
    "cache_creation_input_tokens": "cache write",
    "reasoning_output_tokens": "reasoning",
    "event_count": "events",
    "unit_price_per_million": "price / 1M",
}


def _cell(value: Any) -> str:
    if value is None:
        return ""
    return f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else plain(value)


def register(root: typer.Typer) -> None:
    """Add `clickhouse`, `usage`, `invoice` and `reconcile` to the root command."""
    root.add_typer(app, name="clickhouse")
    root.command(name="usage")(usage)
    root.command(name="invoice")(invoice)
    root.command(name="reconcile")(reconcile)
