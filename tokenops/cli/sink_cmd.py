"""`tokenops sink <name>`: the long-running sinks. One command per sink."""

from __future__ import annotations

import signal
import threading

import typer
from rich.console import Console

from tokenops.cli import clickhouse_sink_cmd
from tokenops.cli.text import plain
from tokenops.settings import KafkaSettings, TopicSettings, load

app = typer.Typer(help="Run a sink: consume the pipeline's topics and write them out.")
console = Console()


@app.command()
def prometheus() -> None:
    """Serve /metrics for Prometheus, from the aggregates, quota and quota-alerts topics.

    Settings: TOKENOPS_PROMETHEUS_SINK_* (port 9464 by default). Stops on SIGTERM/Ctrl-C.
    """
    from tokenops.sinks.prometheus_settings import PrometheusSinkSettings
    from tokenops.sinks.prometheus_sink import PrometheusSink

    settings = load(PrometheusSinkSettings)
    sink = PrometheusSink(load(KafkaSettings), load(TopicSettings), settings)
    stopping = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stopping.set())
    sink.start()
    console.print(plain(f"prometheus sink serving http://{settings.host}:{sink.port}/metrics"))
    stopping.wait()
    sink.stop()


# The ClickHouse sink's command lives in its own module.
app.command(name="clickhouse")(clickhouse_sink_cmd.sink)
