"""`tokenops demo`: the whole pipeline on the local stack, with live progress and checks."""

from __future__ import annotations

import shlex
import time
from dataclasses import replace
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import typer
from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
from rich.progress import Progress as Bar
from rich.table import Table

from tokenops.cli.text import plain
from tokenops.demo import DemoConfig, DemoResult, DemoRun
from tokenops.demo.alerts import Alert, expected_alerts, fired
from tokenops.demo.day import delay_for_one_day
from tokenops.demo.doors import DOORS, door_of
from tokenops.demo.observe import Progress
from tokenops.demo.results import BillingReport, read_billing
from tokenops.demo.run import DEMO_TRAFFIC
from tokenops.settings import StackSettings, load

console = Console()


def demo(
    tenants: int = typer.Option(50, min=1, help="Simulated tenants (Zipf-distributed)."),
    rate: float = typer.Option(20_000, min=1, help="Events per second the fleet sends."),
    duration: float = typer.Option(60, min=1, help="Seconds of traffic."),
    seed: int = typer.Option(7, help="Simulator seed."),
    keep_running: bool = typer.Option(
        False, "--keep-running", help="Leave the stack, worker and sinks running afterwards."
    ),
    report_path: Path | None = typer.Option(
        None, "--report", help="Also write what ClickHouse and Alertmanager said as JSON."
    ),
) -> None:
    """Run the main job: a simulated fleet through Kafka, the worker and both sinks.

    Starts the local stack (Kafka, Prometheus, Alertmanager, embedded ClickHouse), the
    worker, both sinks and the HTTP API; sends DURATION seconds of traffic with
    duplicates, late and malformed records, and a share of it as CloudEvents and OTLP
    GenAI spans through the API; waits until the pipeline has caught up; prints the invoices from
    ClickHouse and the quota alerts from Alertmanager; and checks both against the
    simulator's ledger. Exits 1 if anything differs.
    """
    traffic = replace(DEMO_TRAFFIC, tenants=tenants, rate=rate, duration_s=duration, seed=seed)
    config = DemoConfig(traffic=traffic)
    run = DemoRun(config, load(StackSettings))
    stack_settings = run.stack.settings  # the demo's own, beside the user's stack
    starting = (
        "starting the demo's own Kafka, Prometheus, Alertmanager, worker, sinks and API in "
        f"{stack_settings.state_dir} (a stack you run is left alone)"
    )
    with console.status(plain(starting)):
        run.start()
    delay = delay_for_one_day(time.time(), *run.day_span())
    if delay:
        with console.status(f"waiting {delay:.0f} s for 00:00 UTC to pass: the quotas are daily"):
            time.sleep(delay)
    try:
        result = _run_live(run)
        with console.status("reading invoices and usage from ClickHouse"):
            report = read_billing(
                result.ledger,
                config.window_s,
                result.started,
                result.ended,
                stack_settings.state_dir,
            )
    finally:
        if not keep_running:
            run.stop()
    quotas = expected_alerts(result.ledger, result.quotas)
    ledger_path = stack_settings.state_dir / "demo" / f"{result.run_id}-ledger.json"
    ledger_path.parent.mkdir(parents=True, exist_ok=True)
    result.ledger.save(ledger_path)
    problems = _print_results(result, report, quotas)
    console.print(f"ledger of this run: {plain(ledger_path)}", highlight=False)
    if report_path is not None:
        report_path.write_bytes(
            orjson.dumps(_report_json(result, report, problems, ledger_path), option=_JSON)
        )
    _print_next_steps(run, result, keep_running)
    if problems:
        raise typer.Exit(1)


def _run_live(run: DemoRun) -> DemoResult:
    bar = Bar(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    )
    sending = bar.add_task("fleet sending events", total=None)

    def render(progress: Progress) -> Group:
        bar.update(sending, completed=progress.produced, total=progress.target)
        figures = Table.grid(padding=(0, 2))
        figures.add_column(style="bold")
        figures.add_column(justify="right")
        for label, value in (
            ("events counted by the worker", progress.events_counted),
            ("duplicates dropped", progress.duplicates),
            ("records dead-lettered", progress.dead_lettered),
            ("windows closed", progress.windows_closed),
            ("late corrections", progress.corrections),
            ("windows still open", progress.open_windows),
            ("rows written to ClickHouse", progress.rows_written),
            ("quota alerts firing", progress.alerts),
        ):
            figures.add_row(label, f"{value:,}")
        return Group(bar, Panel(figures, title="pipeline (from its /metrics)", expand=False))

    with Live(console=console, refresh_per_second=4) as live:
        return run.run(lambda progress: live.update(render(progress)))


def _print_results(
    result: DemoResult, report: BillingReport, alerts_expected: set[Alert]
) -> list[str]:
    totals = report.tenant_totals()
    table = Table(title=f"usage and invoices from ClickHouse (run {result.run_id})")
    table.add_column("tenant", no_wrap=True)
    for column in ("events", "input tokens", "output tokens", "invoice"):
        table.add_column(column, justify="right", no_wrap=True)
    ranked = sorted(totals, key=lambda t: -totals[t]["input_tokens"])
    grand: dict[str, Decimal] = {}
    for tenant in ranked:
        for currency, value in report.amount(tenant).items():
            grand[currency] = grand.get(currency, Decimal(0)) + value
    shown = 12
    for tenant in ranked[:shown]:
        t = totals[tenant]
        table.add_row(
            plain(tenant),
            f"{t['event_count']:,}",
            f"{t['input_tokens']:,}",
            f"{t['output_tokens']:,}",
            _money(report.amount(tenant)),
        )
    if len(ranked) > shown:
        table.add_row(f"({len(ranked) - shown} more)", "", "", "", "")
    table.add_section()
    table.add_row(
        "all tenants",
        f"{sum(t['event_count'] for t in totals.values()):,}",
        f"{sum(t['input_tokens'] for t in totals.values()):,}",
        f"{sum(t['output_tokens'] for t in totals.values()):,}",
        _money(grand),
    )
    console.print(table)
    _print_doors(result, report)

    alerts = Table(title="quota alerts from Alertmanager")
    for column in ("alert", "tenant", "quota", "threshold", "severity", "since (UTC)"):
        alerts.add_column(column, no_wrap=True)
    for alert in result.alerts:
        cells = (
            alert.get("alertname", "").removeprefix("Tokenops"),
            alert.get("tenant", ""),
            alert.get("quota", ""),
            f"{alert.get('threshold_pct', '')} %",
            alert.get("severity", ""),
            alert.get("startsAt", "")[11:19],
        )
        alerts.add_row(*map(plain, cells))
    console.print(alerts)

    problems = list(report.differences)
    seen = fired(result.alerts)
    if seen != alerts_expected:
        problems.append(f"alerts fired {sorted(seen)}, ledger expects {sorted(alerts_expected)}")
    dead = result.progress.dead_lettered
    if dead != len(result.ledger.malformed):
        problems.append(f"{dead} records dead-lettered, {len(result.ledger.malformed)} injected")
    ledger = result.ledger
    console.print(
        f"ledger: {ledger.records_sent:,} records sent, {ledger.unique_events:,} unique events, "
        f"{len(ledger.duplicates):,} duplicates, {len(ledger.late):,} late, "
        f"{len(ledger.malformed):,} malformed"
    )
    if problems:
        console.print("[bold red]reconciliation against the ledger FAILED:[/]")
        for problem in problems[:30]:
            console.print(f"  {plain(problem)}", highlight=False)
    else:
        checks = ", ".join(report.reconcile_checks)
        console.print(
            "[bold green]reconciled[/]: usage, invoices, alerts and dead letters equal the "
            f"ledger; ClickHouse checks clean ({plain(checks)})"
        )
    return problems


def counted_by_door(result: DemoResult, report: BillingReport) -> dict[str, int]:
    """Events ClickHouse counted, by the door their tenant's events came through."""
    counted = dict.fromkeys(DOORS, 0)
    for tenant, totals in report.tenant_totals().items():
        counted[door_of(tenant, result.tenant_prefix)] += totals["event_count"]
    return counted


def _print_doors(result: DemoResult, report: BillingReport) -> None:
    table = Table(title="events per door: sent, and counted in ClickHouse")
    for column in ("door", "events sent", "events counted"):
        table.add_column(column, justify="right" if column != "door" else "left")
    counted = counted_by_door(result, report)
    labels = {"sdk": "sdk (Kafka)", "http": "http (CloudEvents)", "otlp": "otlp (GenAI spans)"}
    for door in DOORS:
        table.add_row(labels[door], f"{result.doors.sent[door]:,}", f"{counted[door]:,}")
    console.print(table)
    if result.doors.otlp_skipped:
        console.print(result.doors.otlp_skipped, highlight=False)


_JSON = orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS


def _report_json(
    result: DemoResult, report: BillingReport, problems: list[str], ledger_path: Path
) -> dict[str, Any]:
    return {
        "run_id": result.run_id,
        "tenant_prefix": result.tenant_prefix,
        "ledger": str(ledger_path),
        "tenants": {
            tenant: {**counts, "invoice": {c: str(v) for c, v in report.amount(tenant).items()}}
            for tenant, counts in report.tenant_totals().items()
        },
        "alerts": sorted(fired(result.alerts)),
        "dead_lettered": result.progress.dead_lettered,
        "doors": {
            door: {"sent": result.doors.sent[door], "counted": counted}
            for door, counted in counted_by_door(result, report).items()
        },
        "otlp_skipped": result.doors.otlp_skipped,
        "problems": problems,
    }


def _money(amounts: dict[str, Decimal]) -> str:
    return ", ".join(f"{value:,.2f} {currency}" for currency, value in sorted(amounts.items()))


def _print_next_steps(run: DemoRun, result: DemoResult, keep_running: bool) -> None:
    tenant = f"{result.tenant_prefix}001"
    month = result.started.strftime("%Y-%m")
    day = result.started.strftime("%Y-%m-%d")
    next_day = (result.started + timedelta(days=1)).strftime("%Y-%m-%d")
    exports = " ".join(f"{k}={shlex.quote(v)}" for k, v in run.place.service_env().items()
                       if k.startswith(("TOKENOPS_STACK_", "TOKENOPS_CLICKHOUSE_URL")))  # fmt: skip
    lines = [
        f"Prometheus    {run.stack.prometheus.url}  (try: tokenops_quota_usage_ratio)",
        f"Alertmanager  {run.stack.alertmanager.url}",
        f"usage         tokenops usage --tenant {tenant} --from {day} --to {next_day} --by hour",
        f"invoice       tokenops invoice --tenant {tenant} --month {month}",
        f"logs          {run.log_dir}",
        f"stop          {exports} tokenops stack down"
        if keep_running
        else "the demo's stack was stopped; `tokenops demo --keep-running` leaves it up",
    ]
    if keep_running:
        lines.insert(
            2, f"this shell    export {exports}  (the commands below use the demo's store)"
        )
    console.print(Panel(plain("\n".join(lines)), title="where to look next", expand=False))
