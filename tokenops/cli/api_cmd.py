"""`tokenops api serve|new-key|revoke-key`: the HTTP API and its keys."""

from __future__ import annotations

import typer
from rich.console import Console

from tokenops.api.keys import new_key, revoke_key
from tokenops.api.settings import ApiSettings
from tokenops.errors import TokenopsError
from tokenops.producers import ProducerSettings
from tokenops.settings import KafkaSettings, StackSettings, TopicSettings, load

app = typer.Typer(help="The HTTP API: CloudEvents and OTLP ingest, queries.", no_args_is_help=True)
out = Console()


@app.command()
def serve() -> None:
    """Serve the API (TOKENOPS_API_*, _KAFKA_*, _PRODUCER_*, _TOPIC_*, _CLICKHOUSE_*)."""
    from tokenops.api.server import ServerSettings
    from tokenops.api.server import serve as run
    from tokenops.sinks.clickhouse.settings import ClickHouseSettings

    run(
        ServerSettings(
            api=load(ApiSettings),
            kafka=load(KafkaSettings),
            producer=load(ProducerSettings),
            topics=load(TopicSettings),
            clickhouse=load(ClickHouseSettings),
            stack=load(StackSettings),
        )
    )


@app.command("new-key")
def new_key_cmd(
    tenant: str | None = typer.Option(None, help="the tenant this key writes and reads"),
    admin: bool = typer.Option(False, "--admin", help="a key that reads every tenant"),
) -> None:
    """Add an API key; it is printed once and stored only as its SHA-256."""
    if (tenant is None) == (not admin):
        raise TokenopsError("give exactly one of --tenant T or --admin")
    key_id, key = new_key(load(ApiSettings).keys_file, None if admin else tenant)
    out.print(f"key id: {key_id}", highlight=False)
    print(key)


@app.command("revoke-key")
def revoke_key_cmd(key_id: str) -> None:
    """Remove an API key by its id (rotation: new-key, move clients, revoke the old)."""
    if not revoke_key(load(ApiSettings).keys_file, key_id):
        raise TokenopsError(f"no API key with id {key_id!r}")
    out.print(f"revoked {key_id}", highlight=False)
