"""`tokenops sink <name>`: the long-running sinks. One command per sink."""

from __future__ import annotations

import signal
import threading
from types import FrameType

import typer
from rich.console import Console

from tokenops.cli import clickhouse_sink_cmd
from tokenops.cli.text import plain
from tokenops.progress_log import ProgressLog
from tokenops.settings import KafkaSettings, LogSettings, StackSettings, TopicSettings, load
from tokenops.stack.errors import PortInUseError
from tokenops.stack.targets import advertise, withdraw

app = typer.Typer(help="Run a sink: consume the pipeline's topics and write them out.")
console = Console()


@app.command()
def prometheus() -> None:
    """Serve /metrics for Prometheus, from the aggregates, quota and quota-alerts topics.

    Settings: TOKENOPS_PROMETHEUS_SINK_* (port 9464 by default). Stops on SIGTERM/Ctrl-C.
    """
    from tokenops.sinks.prometheus.settings import PrometheusSinkSettings
    from tokenops.sinks.prometheus.sink import PrometheusSink

    settings = load(PrometheusSinkSettings)
    sink = PrometheusSink(load(KafkaSettings), load(TopicSettings), settings)
    stopping: list[str] = []
    stopped = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stopping.append(signal.Signals(signum).name)
        stopped.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, request_stop)
    try:
        sink.start()
    except OSError as exc:
        raise PortInUseError(
            "the Prometheus sink", settings.port, "TOKENOPS_PROMETHEUS_SINK_PORT", settings.host
        ) from exc
    console.print(plain(f"prometheus sink serving http://{settings.host}:{sink.port}/metrics"))
    target = advertise(load(StackSettings).state_dir, "tokenops-prometheus-sink", sink.port)
    progress = ProgressLog(
        "prometheus sink",
        sink.registry,
        PROMETHEUS_SINK_FIGURES,
        load(LogSettings).progress_every_s,
    ).start()
    stopped.wait()
    sink.stop()
    withdraw(target)
    progress.stop(stopping[0])


# What the Prometheus sink's progress line reports, from its /metrics.
PROMETHEUS_SINK_FIGURES = {
    "events": "tokenops_events_total",
    "dead_letters": "tokenops_dead_letter_records_total",
    "corrections": "tokenops_window_corrections_total",
    "errors": "tokenops_prometheus_sink_errors_total",
    "ready": "tokenops_prometheus_sink_ready",
}


# The ClickHouse sink's command lives in its own module.
app.command(name="clickhouse")(clickhouse_sink_cmd.sink)
