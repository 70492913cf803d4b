"""`tokenops stack up | down | status | env`."""

from __future__ import annotations

import shlex

import typer
from rich.console import Console
from rich.table import Table

from tokenops.cli.text import plain
from tokenops.settings import StackSettings, load
from tokenops.sinks.clickhouse.settings import ClickHouseSettings
from tokenops.stack import LocalStack
from tokenops.stack.regions import parse_regions

app = typer.Typer(help="Start, stop and inspect the local stack (Kafka, Prometheus, Alertmanager).")
console = Console()


def _stack() -> LocalStack:
    return LocalStack(load(StackSettings), clickhouse=load(ClickHouseSettings))


@app.command()
def up(
    force: bool = typer.Option(
        False, "--force", help="Delete a state directory holding another cluster's data."
    ),
    regions: str = typer.Option(
        "",
        "--regions",
        help="Several regions, central last (west,central): a Kafka cluster per other "
        "region and MirrorMaker 2 replicating its usage topic into this stack's.",
    ),
) -> None:
    """Start Kafka (KRaft), Prometheus and Alertmanager, and create the pipeline's topics.

    The first run fetches the Kafka jars from Maven Central into the cache directory and
    installs Prometheus and Alertmanager from Debian's packages if they are missing.
    """
    stack = _stack()
    wanted = parse_regions(regions) if regions else None
    running = stack.running()
    if len(running) == 3 and wanted is None:
        console.print(f"the local stack is already running ({', '.join(running)})")
        _print_status(stack)
        return
    with console.status("starting the local stack (the first start fetches Kafka's jars)"):
        stack.up(force=force, regions=wanted)
    _print_status(stack)


@app.command()
def down() -> None:
    """Stop every component of the local stack; data stays in the state directory."""
    stopped = _stack().down()
    console.print(f"stopped: {', '.join(stopped)}" if stopped else "nothing was running")


@app.command()
def env() -> None:
    """Print the exports that point a second shell at this stack: eval "$(tokenops stack env)".

    Worker, sinks, producers and the billing commands started there then use this
    stack's Kafka port, state directory (worker state, spool, ClickHouse store) and
    Prometheus.
    """
    for name, value in _stack().env().items():
        print(f"export {name}={shlex.quote(value)}")


@app.command()
def status() -> None:
    """Show each component with its address, pid, version and state. Exit 1 if any is down."""
    stack = _stack()
    rows = _print_status(stack)
    if not all(row.up for row in rows):
        raise typer.Exit(1)


def _print_status(stack: LocalStack) -> list:  # type: ignore[type-arg]
    rows = stack.status()
    table = Table(title=plain(f"tokenops local stack ({stack.settings.state_dir})"))
    for column in ("component", "state", "address", "pid", "version"):
        table.add_column(column)
    for row in rows:
        colour = "green" if row.up else "red"
        table.add_row(
            plain(row.name),
            f"[{colour}]{plain(row.state)}[/]",
            plain(row.address),
            str(row.pid or "-"),
            plain(row.version),
        )
    console.print(table)
    return rows
