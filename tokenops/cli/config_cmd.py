"""`tokenops config show`: the effective settings, secrets masked."""

from __future__ import annotations

import typer
from pydantic_settings import BaseSettings
from rich.console import Console
from rich.table import Table

from tokenops.cli.text import plain
from tokenops.config import TEST_HOOKS, description, env_names, settings_sections
from tokenops.errors import ConfigError
from tokenops.secrets import masked
from tokenops.settings import load

app = typer.Typer(help="Inspect tokenops' settings (TOKENOPS_* environment variables).")
console = Console()


@app.command()
def show() -> None:
    """Print every setting with its environment variable, effective value and what it does.

    Secrets print as '**********', nested ones too (`tokenops/secrets.py`): entries of
    `TOKENOPS_KAFKA_CLIENT_CONFIG` such as `ssl.key.pem`, and `clientSecret=...` inside
    `sasl.oauthbearer.config`. Every invalid setting is reported, one line each.
    """
    table = Table(title="tokenops settings")
    table.add_column("variable", no_wrap=True)
    table.add_column("value")
    table.add_column("what it does")
    problems: list[str] = []
    for section in settings_sections():
        try:
            settings = load(section)
        except ConfigError as exc:
            problems.extend(exc.problems)
            continue
        for name, value, what in _rows(settings):
            table.add_row(plain(name), plain(value), plain(what))
    if problems:
        raise ConfigError(problems)
    console.print(table)


def _rows(settings: BaseSettings) -> list[tuple[str, str, str]]:
    """(variable, masked value, description) of each setting; test hooks left out."""
    section = type(settings)
    return [
        (name, masked(field, getattr(settings, field)), description(section, field))
        for field, name in env_names(section)
        if name not in TEST_HOOKS
    ]
