"""The `tokenops` command: one Typer app, one module per command group.

Modules: `worker_cmd`, `sink_cmd` and `clickhouse_sink_cmd` (the long-running services),
`api_cmd`, `stack_cmd`, `topics_cmd`, `quota_cmd`, `clickhouse_cmd` (billing reads),
`simulate_cmd`, `demo_cmd`, `config_cmd`; `text` (plain text into rich output).
"""

from __future__ import annotations

import os
import sys
from typing import Any, NoReturn

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
    replication_cmd,
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
app.add_typer(replication_cmd.app, name="replication")
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
        # Not standalone, so a usage error is ours to print: one line and a hint, like
        # every other error, instead of click's framed panel.
        code = app(standalone_mode=False)
    except typer.TyperException as exc:  # click's usage errors, as typer vendors them
        _usage_error(exc)
    except typer.Abort:
        err.print("[bold red]aborted[/]", highlight=False)
        sys.exit(1)
    except TokenopsError as exc:
        err.print(f"[bold red]error:[/] {plain(exc.message)}", highlight=False, soft_wrap=True)
        if exc.hint:
            err.print(f"[bold]hint:[/] {plain(exc.hint)}", highlight=False, soft_wrap=True)
        sys.exit(1)
    if isinstance(code, int) and code:  # typer.Exit(code) comes back as its code
        sys.exit(code)


def _usage_error(exc: typer.TyperException) -> NoReturn:
    """A usage error as one line and a hint; a bare group still prints its help."""
    ctx = getattr(exc, "ctx", None)
    code = int(getattr(exc, "exit_code", 2))
    if type(exc).__name__ == "NoArgsIsHelpError" and ctx is not None:
        print(ctx.get_help())
        sys.exit(code)
    message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
    err.print(f"[bold red]error:[/] {plain(message)}", highlight=False, soft_wrap=True)
    command = ctx.command_path if ctx is not None else "tokenops"
    err.print(f"[bold]hint:[/] see `{plain(command)} --help`", highlight=False)
    sys.exit(code)


def _warn_unknown_variables() -> None:
    """A misspelled variable would otherwise be ignored in silence."""
    for name, close in unknown_variables(os.environ):
        guess = f"; did you mean {close}?" if close else ""
        err.print(
            f"[bold yellow]warning:[/] {plain(name)} is not a tokenops setting{plain(guess)}",
            highlight=False,
            soft_wrap=True,
        )
