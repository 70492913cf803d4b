"""`tokenops replication lag`: serve MirrorMaker 2's replication lag to Prometheus."""

from __future__ import annotations

import signal
import threading
from types import FrameType

import typer
from rich.console import Console

from tokenops.cli.text import plain
from tokenops.errors import ConfigError
from tokenops.settings import KafkaSettings, StackSettings, TopicSettings, load
from tokenops.stack.errors import PortInUseError
from tokenops.stack.targets import advertise, withdraw

app = typer.Typer(help="Several regions: MirrorMaker 2's replication into this cluster.")
console = Console()

JOB = "tokenops-replication-lag"


@app.command()
def lag() -> None:
    """Serve /metrics with the replication lag of each source region (records, seconds).

    Settings: TOKENOPS_REPLICATION_* (sources as JSON, port 9467 by default); the central
    cluster is TOKENOPS_KAFKA_*. Stops on SIGTERM/Ctrl-C.
    """
    from tokenops.replication.exporter import LagExporter
    from tokenops.replication.settings import ReplicationSettings

    settings = load(ReplicationSettings)
    if not settings.sources:
        raise ConfigError(
            ['TOKENOPS_REPLICATION_SOURCES: no source region, e.g. {"west": "kafka-west:9092"}']
        )
    exporter = LagExporter(settings, load(KafkaSettings), load(TopicSettings).usage)
    stopped = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stopped.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, request_stop)
    try:
        server = exporter.serve()
    except OSError as exc:
        raise PortInUseError(
            "the replication-lag exporter",
            settings.http_port,
            "TOKENOPS_REPLICATION_HTTP_PORT",
            settings.http_host,
        ) from exc
    console.print(plain(f"replication lag serving {server.url}/metrics"))
    target = advertise(load(StackSettings).state_dir, JOB, server.port)
    exporter.run(stopped)
    server.stop()
    withdraw(target)
