"""The `tokenops` command: one Typer app, one module per command group."""

from __future__ import annotations

import sys

import typer
from rich.console import Console

from tokenops.cli import (
    api_cmd,
    clickhouse_cmd,
    config_cmd,
    demo_cmd,
    quota_cmd,
    simulate_cmd,
    sink_cmd,
    stack_cmd,
    topics_cmd,
    worker_cmd,
)
from tokenops.cli.text import plain
from tokenops.errors import TokenopsError
from tokenops.logs import configure_logging

app = typer.Typer(
    name="tokenops",
    help="Billing-grade token-usage metering: Kafka in, Faust windows, ClickHouse and "
    "Prometheus out.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(stack_cmd.app, name="stack")
app.add_typer(config_cmd.app, name="config")
app.add_typer(topics_cmd.app, name="topics")
app.add_typer(quota_cmd.app, name="quota")
app.add_typer(api_cmd.app, name="api")
app.command(name="demo")(demo_cmd.demo)
app.add_typer(sink_cmd.app, name="sink")
app.command(name="worker")(worker_cmd.worker)
app.command(name="simulate")(simulate_cmd.simulate)
clickhouse_cmd.register(app)

err = Console(stderr=True)


def main() -> None:
    """Entry point: a `TokenopsError` becomes one readable line and exit code 1."""
    configure_logging()
    try:
        app()  # standalone: click prints usage errors and exits by itself
    except TokenopsError as exc:
        err.print(f"[bold red]error:[/] {plain(exc.message)}", highlight=False, soft_wrap=True)
        if exc.hint:
            err.print(f"[bold]hint:[/] {plain(exc.hint)}", highlight=False, soft_wrap=True)
        sys.exit(1)
