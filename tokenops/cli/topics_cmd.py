"""`tokenops topics create | list`: the pipeline's topics on any cluster."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.table import Table

from tokenops.cli.text import plain
from tokenops.reach import cluster_metadata
from tokenops.settings import KafkaSettings, TopicSettings, load
from tokenops.topics import ensure_topics, pipeline_topics

app = typer.Typer(help="Create and list the pipeline's Kafka topics (TOKENOPS_TOPIC_*).")
console = Console()


@app.command()
def create() -> None:
    """Create the pipeline's topics that are missing, with their retention and compaction.

    Safe to run at every deploy: existing topics are left as they are.
    """
    specs = pipeline_topics(load(TopicSettings))
    created = ensure_topics(load(KafkaSettings), specs)
    for spec in specs:
        state = "[green]created[/]" if spec.name in created else "exists"
        console.print(f"{plain(spec.name)}: {state}")


@app.command(name="list")
def list_topics() -> None:
    """Show the pipeline's topics: partitions and whether each exists on the cluster."""
    kafka = load(KafkaSettings)
    metadata = cluster_metadata(kafka, timeout_s=10)
    table = Table(title=plain(f"pipeline topics on {kafka.bootstrap_servers}"))
    for column in ("topic", "partitions", "policy", "exists"):
        table.add_column(column)
    for spec in pipeline_topics(load(TopicSettings)):
        found = metadata.topics.get(spec.name)
        table.add_row(
            plain(spec.name),
            str(len(found.partitions) if found else spec.partitions),
            plain(spec.config.get("cleanup.policy", "delete")),
            "yes" if found else "[red]no[/]",
        )
    console.print(table)
