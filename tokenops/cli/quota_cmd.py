"""`tokenops quota set | list | delete`: the quotas in force, on the compacted quota topic."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from tokenops.cli.text import plain
from tokenops.quotas.book import load_quota_file
from tokenops.quotas.errors import QuotaError
from tokenops.quotas.topic import delete_quota, publish_quotas, read_quota_book
from tokenops.schemas.quota import QuotaDefinition
from tokenops.settings import KafkaSettings, TopicSettings, load

app = typer.Typer(help="Set, list and delete per-tenant quotas (applied at runtime).")
console = Console()


@app.command("set")
def set_(
    tenant: str | None = typer.Argument(None, help="Tenant id."),
    name: str | None = typer.Argument(None, help="Quota name, unique per tenant."),
    period: str = typer.Option("day", help="minute | day | month."),
    limit: str | None = typer.Option(None, help="Tokens (cost budgets: use --file)."),
    model: str | None = typer.Option(None, help="Count only this model."),
    timezone: str = typer.Option("UTC", help="IANA timezone of day and month periods."),
    thresholds: str = typer.Option("50,80,100", help="Alert thresholds in percent."),
    file: Annotated[
        Path | None, typer.Option("--file", "-f", help="Publish every quota of a file.")
    ] = None,
    check: bool = typer.Option(False, "--check", help="With --file: only validate the file."),
) -> None:
    """Create or replace a quota (or every quota of a file); workers apply it at once."""
    if file is not None:
        quotas = load_quota_file(file)
        if check:
            console.print(f"{plain(file)}: {len(quotas)} valid quotas")
            return
    else:
        if tenant is None or name is None or limit is None:
            raise QuotaError("quota set needs TENANT NAME and --limit, or --file FILE")
        quotas = [_definition(tenant, name, period, limit, model, timezone, thresholds)]
    count = publish_quotas(load(KafkaSettings), load(TopicSettings), quotas)
    console.print(f"published {count} quota(s) to {plain(load(TopicSettings).quotas)}")


@app.command("list")
def list_(tenant: str | None = typer.Option(None, help="Only this tenant.")) -> None:
    """Show every quota in force (read from the quota topic)."""
    book = read_quota_book(load(KafkaSettings), load(TopicSettings))
    table = Table(title="tokenops quotas")
    for column in ("tenant", "name", "period", "limit", "model", "timezone", "thresholds %"):
        table.add_column(column)
    for quota in sorted(book, key=lambda q: (q.tenant_id, q.name)):
        if tenant is not None and quota.tenant_id != tenant:
            continue
        unit = quota.currency if quota.is_cost else "tokens"
        cells = (
            quota.tenant_id,
            quota.name,
            quota.period,
            f"{quota.limit} {unit}",
            quota.model or "*",
            quota.timezone,
            ",".join(str(t) for t in quota.thresholds_pct),
        )
        table.add_row(*map(plain, cells))
    console.print(table)


@app.command()
def delete(
    tenant: str = typer.Argument(..., help="Tenant id."),
    name: str = typer.Argument(..., help="Quota name."),
) -> None:
    """Delete a quota: its alerts stop from the next event on."""
    kafka, topics = load(KafkaSettings), load(TopicSettings)
    if read_quota_book(kafka, topics).get(tenant, name) is None:
        raise QuotaError(
            f"no quota {name!r} for tenant {tenant!r}", hint="see `tokenops quota list`"
        )
    delete_quota(kafka, topics, tenant, name)
    console.print(f"deleted quota {plain(tenant)}/{plain(name)}")


def _definition(
    tenant: str, name: str, period: str, limit: str, model: str | None, tz: str, thresholds: str
) -> QuotaDefinition:
    fields: dict[str, Any] = {"tenant_id": tenant, "name": name, "period": period, "model": model}
    fields["timezone"] = tz
    try:
        fields["limit"] = Decimal(limit)
        fields["thresholds_pct"] = [int(t) for t in thresholds.split(",") if t.strip()]
        return QuotaDefinition.model_validate(fields)
    except (InvalidOperation, ValueError) as exc:
        problems = (
            [f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()]
            if isinstance(exc, ValidationError)
            else [str(exc)]
        )
        raise QuotaError(f"invalid quota {tenant}/{name}: " + "; ".join(problems)) from exc
