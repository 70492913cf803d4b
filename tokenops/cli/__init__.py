"""The `tokenops` command: one Typer app, one module per command group."""

from __future__ import annotations

import os
import sys
from typing import Any

import typer
from rich.console import Console
from typer.core import TyperOption

from tokenops import __version__
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
from tokenops.config import unknown_variables
from tokenops.errors import TokenopsError
from tokenops.logs import configure_logging
from tokenops.settings import LogSettings, load


def _flags_show_no_type() -> None:
    """Typer prints `<bool>` beside every on/off flag, as if it took a value; a flag
    takes none. Patched once here so every command's help, present and future, agrees."""
    shown = TyperOption.display_type_rich

    def display_type_rich(self: TyperOption, ctx: Any) -> str | None:
        return None if self.is_flag else shown(self, ctx)

    TyperOption.display_type_rich = display_type_rich  # type: ignore[method-assign]


_flags_show_no_type()

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


def _print_version(wanted: bool) -> None:
    if wanted:
        print(f"tokenops {__version__}")
        raise typer.Exit()


@app.callback()
def _options(
    version: bool = typer.Option(
        False,
        "--version",
        callback=_print_version,
        is_eager=True,
        help="Print the version and exit.",
    ),
) -> None:
    """Billing-grade token-usage metering: Kafka in, Faust windows, ClickHouse and
    Prometheus out. Settings come from TOKENOPS_* variables (`tokenops config show`)."""


def main() -> None:
    """Entry point: a `TokenopsError` becomes one readable line and exit code 1."""
    try:
        configure_logging(load(LogSettings))
        _warn_unknown_variables()
        app()  # standalone: click prints usage errors and exits by itself
    except TokenopsError as exc:
        err.print(f"[bold red]error:[/] {plain(exc.message)}", highlight=False, soft_wrap=True)
        if exc.hint:
            err.print(f"[bold]hint:[/] {plain(exc.hint)}", highlight=False, soft_wrap=True)
        sys.exit(1)


def _warn_unknown_variables() -> None:
    """A misspelled variable would otherwise be ignored in silence."""
    for name, close in unknown_variables(os.environ):
        guess = f"; did you mean {close}?" if close else ""
        err.print(
            f"[bold yellow]warning:[/] {plain(name)} is not a tokenops setting{plain(guess)}",
            highlight=False,
            soft_wrap=True,
        )
