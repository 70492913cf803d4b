"""`tokenops clickhouse migrate`, `tokenops usage`, `tokenops invoice`, `tokenops reconcile`.

The reads open the billing store directly, or ask the running `tokenops sink clickhouse`
when it holds the embedded store (chDB allows one process per store).
"""

from __future__ import annotations

import csv
import sys
from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Any

import orjson
import typer
from rich.console import Console
from rich.table import Table

from tokenops.cli.text import plain
from tokenops.settings import StackSettings, load
from tokenops.sinks.clickhouse import ClickHouseSettings, invoice_html, open_store, time_zones
from tokenops.sinks.clickhouse.errors import ClickHouseError, PriceError
from tokenops.sinks.clickhouse.invoice_model import Invoice
from tokenops.sinks.clickhouse.migrations import load_migrations
from tokenops.sinks.clickhouse.parquet import INVOICE_STRUCTURE, to_parquet, usage_structure
from tokenops.sinks.clickhouse.reader import BillingReader
from tokenops.sinks.clickhouse.service import prepare_store
from tokenops.sinks.clickhouse.wire import (
    differences_to_json,
    invoice_to_json,
    parse_time,
    usage_to_json,
)

app = typer.Typer(help="The billing store (ClickHouse or the embedded chDB store).")
console = Console()


class Format(StrEnum):
    table = "table"
    csv = "csv"
    json = "json"
    html = "html"
    parquet = "parquet"


class By(StrEnum):
    model = "model"
    day = "day"
    hour = "hour"
    month = "month"
    region = "region"


FORMAT = typer.Option(
    Format.table,
    "--format",
    help="table, csv, json, parquet (to a file or pipe), html (invoice only).",
)
BY = typer.Option(
    By.model, "--by", help="model, local hour, day or month, or region (from the window totals)."
)


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


@app.command()
def ddl(
    variant: str = typer.Option(
        None, "--variant", help="single or cluster (default: TOKENOPS_CLICKHOUSE_SCHEMA_VARIANT)."
    ),
) -> None:
    """Print the schema DDL `migrate` applies, migration by migration (for review; the
    cluster DDL is derived from the single-node migrations, there are no cluster copies)."""
    chosen = variant or load(ClickHouseSettings).schema_variant
    if chosen not in ("single", "cluster"):
        raise ClickHouseError(f"--variant={chosen!r}", hint="use single or cluster")
    for migration in load_migrations(variant=chosen):
        sys.stdout.write(f"-- {migration.label} ({chosen})\n{migration.sql.strip()}\n\n")


def usage(
    tenant: str = typer.Option(..., "--tenant", help="The tenant id."),
    start: str = typer.Option(
        None, "--from", help="Date or ISO time, inclusive (default: today, tenant's zone)."
    ),
    end: str = typer.Option(
        None, "--to", help="Date or ISO time, exclusive (default: the day after --from)."
    ),
    by: By = BY,
    fmt: Format = FORMAT,
) -> None:
    """Token totals of one tenant in [from, to), by model, local hour, day or month, or
    region (summed from the window totals; '' is events without a region).

    Dates are local midnights in the tenant's billing time zone
    (TOKENOPS_CLICKHOUSE_TIME_ZONES, default UTC). The output says how final the totals
    are: `as_of` (the watermark), the windows still open in the range, and `final`.
    """
    reader = _reader()
    zone = reader.settings.zone_of(tenant)
    first = _moment(start, "--from", zone) if start else time_zones.day_range(_today(zone), zone)[0]
    if end:
        last = _moment(end, "--to", zone)
    else:
        last = time_zones.day_range(time_zones.local_date(first, zone), zone)[1]
    if fmt is Format.html:
        raise ClickHouseError("--format html is for invoices", hint="use table, csv or json")
    result = reader.usage(tenant, first, last, by.value)
    stamp = result.finality.to_json()
    if fmt is Format.parquet:
        _binary(to_parquet(result.rows, usage_structure(by is not By.model)))
        _summary(stamp)
        return
    if fmt is Format.json:
        _json(usage_to_json(result))
        return
    if fmt is Format.csv:
        _emit(result.rows, "", fmt)
        _summary(stamp)
        return
    span = f"[{first.isoformat()}, {last.isoformat()}) {zone}"
    if result.rows:
        _emit(result.rows, f"usage of {tenant} by {by.value}, {span}", fmt)
    else:
        console.print(f"no usage for {plain(tenant)} in {plain(span)}")
    console.print(_stamp_text(stamp))


def invoice(
    tenant: str = typer.Option(..., "--tenant", help="The tenant id."),
    month: str = typer.Option(
        None, "--month", help="The month, e.g. 2026-11 (default: the current one)."
    ),
    fmt: Format = FORMAT,
) -> None:
    """One tenant's invoice: a line per model and token type, adjustments, the total.

    Months are the tenant's billing time zone. A closed month's invoice is frozen: it has
    a number and a content hash, and `final: true`. Amounts are exact Decimals rounded
    half-up to the cent per line; the total is the sum of the lines. Usage without a
    price in effect is an error (exit 1). CSV has the lines only; the totals and the
    finality stamp go to stderr.
    """
    reader = _reader()
    zone = reader.settings.zone_of(tenant)
    text = month or _today(zone).isoformat()[:7]
    try:
        first = date.fromisoformat(text + "-01")
    except ValueError:
        raise ClickHouseError(
            f"--month={text!r}: expected YYYY-MM", hint="e.g. --month 2026-11"
        ) from None
    bill = reader.invoice(tenant, first)
    stamp = {
        "number": bill.number,
        "content_hash": bill.content_hash,
        **bill.finality.to_json(),
    }
    if fmt is Format.json:
        _json(invoice_to_json(bill))
    elif fmt is Format.html:
        sys.stdout.write(invoice_html.render(bill))
    elif fmt is Format.parquet:
        _binary(to_parquet(invoice_rows(bill), INVOICE_STRUCTURE))
        _summary({**{f"total_{c}": str(t) for c, t in bill.totals.items()}, **stamp})
    elif fmt is Format.csv:
        _emit(invoice_rows(bill), "", fmt)
        _summary({**{f"total_{c}": str(t) for c, t in bill.totals.items()}, **stamp})
    elif not bill.lines and not bill.adjustments and not bill.unpriced:
        console.print(f"no billable usage for {plain(tenant)} in {plain(text)} ({plain(zone)})")
        console.print(_stamp_text(stamp))
    else:
        _emit(invoice_rows(bill), f"invoice {tenant} {text} ({zone})", fmt)
        for currency, total in bill.totals.items():
            console.print(f"total {plain(currency)} {plain(total)}")
        console.print(_stamp_text(stamp))
    if bill.unpriced:
        missing = ", ".join(f"{m}/{t} ({q} tokens)" for m, t, q in bill.unpriced)
        raise PriceError(
            f"usage without a price in effect: {missing}",
            hint="add the model to deploy/prices.yaml and run `tokenops clickhouse migrate`",
        )


def invoice_rows(bill: Invoice) -> list[dict[str, Any]]:
    """One row per line, then one per adjustment line (`kind` tells them apart)."""

    def row(kind: str, line: Any, **more: Any) -> dict[str, Any]:
        return {
            "kind": kind,
            "model": line.model,
            "region": line.region,
            "token_type": line.token_type,
            "quantity": line.quantity,
            "unit_price_per_million": line.unit_price_per_million,
            "currency": line.currency,
            "amount": line.amount,
            **more,
        }

    return [row("line", line) for line in bill.lines] + [
        row(
            "adjustment",
            line,
            original_invoice=line.original_invoice,
            window_start=line.window_start,
            event_count=line.event_count,
        )
        for line in bill.adjustments
    ]


def _today(zone: str) -> date:
    return datetime.now(UTC).astimezone(time_zones.zone(zone)).date()


def _moment(text: str, option: str, zone: str) -> datetime:
    """A date is local midnight in `zone`; a time without an offset is UTC."""
    try:
        if len(text) == 10:
            return time_zones.local_midnight(date.fromisoformat(text), zone)
        return parse_time(text)
    except ValueError:
        raise ClickHouseError(
            f"{option}={text!r}: expected a date or an ISO time", hint="e.g. 2026-11-01"
        ) from None


def _stamp_text(stamp: dict[str, Any]) -> str:
    return "; ".join(
        f"{k}: {plain(str(v).lower() if isinstance(v, bool) else v)}" for k, v in stamp.items()
    )


def _summary(stamp: dict[str, Any]) -> None:
    """The totals and finality of a CSV, on stderr: the CSV itself holds rows only."""
    for key, value in stamp.items():
        sys.stderr.write(f"{key}={'' if value is None else value}\n")


def _binary(data: bytes) -> None:
    if sys.stdout.isatty():
        raise ClickHouseError(
            "--format parquet writes binary data", hint="redirect it: > usage.parquet"
        )
    sys.stdout.buffer.write(data)
    sys.stdout.flush()


def _json(data: Any) -> None:
    sys.stdout.write(orjson.dumps(data, default=str, option=orjson.OPT_INDENT_2).decode())
    sys.stdout.write("\n")


def reconcile(
    start: str = typer.Option(..., "--from", help="UTC date or time, inclusive."),
    end: str = typer.Option(..., "--to", help="UTC date or time, exclusive."),
    fmt: Format = FORMAT,
) -> None:
    """Compare raw events, window totals, hour/day/month rollups and closed invoices; exit 1
    on a difference (with a region column when a difference has a region)."""
    if fmt in (Format.html, Format.parquet):
        raise ClickHouseError(f"--format {fmt.value} is not for reconcile", hint="use csv or json")
    checks, differences = _reader().reconcile(_time(start, "--from"), _time(end, "--to"))
    rows = differences_to_json(differences)
    if rows or fmt is not Format.table:
        _emit(rows, "reconciliation differences", fmt)
    if fmt is Format.table:
        verdict = f"{len(differences)} differences" if differences else "[green]clean[/]"
        console.print(f"checked: {'; '.join(checks)}: {verdict}")
    if differences:
        raise typer.Exit(1)


def sql(
    query: str = typer.Argument(..., help="One read-only SQL statement."),
    param: list[str] = typer.Option(
        [], "--param", help="A bound parameter name=value, for {name:Type} in the SQL."
    ),
    fmt: Format = FORMAT,
) -> None:
    """Run a read-only query on the billing store, even while the sink holds it.

    While `tokenops sink clickhouse` holds the embedded store the query runs in the sink
    (over its listener, with the run token of the store's owner file); ClickHouse
    refuses writes and DDL either way.
    """
    named = {}
    for item in param:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise ClickHouseError(
                f"--param {item!r}: expected name=value", hint="--param tenant=acme"
            )
        named[name] = value
    if fmt in (Format.html, Format.parquet):
        raise ClickHouseError(f"--format {fmt.value} is not for sql", hint="use table, csv or json")
    result = _reader().sql(query, named)
    rows = [dict(zip(result["columns"], row, strict=True)) for row in result["rows"]]
    if fmt is Format.table and not rows:
        console.print("no rows")
        return
    _emit(rows, "", fmt)


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
    """Add `clickhouse`, `usage`, `invoice`, `reconcile` and `sql` to the root command."""
    root.add_typer(app, name="clickhouse")
    root.command(name="usage")(usage)
    root.command(name="invoice")(invoice)
    root.command(name="reconcile")(reconcile)
    root.command(name="sql")(sql)
