"""`tokenops config show`: the effective settings, secrets masked."""

from __future__ import annotations

import typer
from pydantic_settings import BaseSettings
from rich.console import Console
from rich.table import Table

from tokenops.config import settings_sections
from tokenops.errors import ConfigError
from tokenops.secrets import masked
from tokenops.settings import load

app = typer.Typer(help="Inspect tokenops' settings (TOKENOPS_* environment variables).")
console = Console()


@app.command()
def show() -> None:
    """Print every setting with its environment variable and effective value.

    Secrets print as '**********', nested ones too (`tokenops/secrets.py`): entries of
    `TOKENOPS_KAFKA_CLIENT_CONFIG` such as `ssl.key.pem`, and `clientSecret=...` inside
    `sasl.oauthbearer.config`. Every invalid setting is reported, one line each.
    """
    table = Table(title="tokenops settings")
    for column in ("variable", "value"):
        table.add_column(column)
    problems: list[str] = []
    for section in settings_sections():
        try:
            settings = load(section)
        except ConfigError as exc:
            problems.extend(exc.problems)
            continue
        for name, value in _flatten(settings):
            table.add_row(name, value)
    if problems:
        raise ConfigError(problems)
    console.print(table)


def _flatten(settings: BaseSettings) -> list[tuple[str, str]]:
    prefix = str(settings.model_config.get("env_prefix", ""))
    rows = []
    for field in type(settings).model_fields:
        value = getattr(settings, field)
        rows.append((f"{prefix}{field}".upper(), masked(field, value)))
    return rows
