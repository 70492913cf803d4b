"""`tokenops simulate`: a fleet of inference nodes sending usage, with a ground-truth ledger."""

from __future__ import annotations

import random
import signal
import time
from datetime import datetime
from pathlib import Path
from types import FrameType

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from tokenops.cli.text import plain
from tokenops.errors import TokenopsError
from tokenops.producers import ProducerSettings, UsageProducer
from tokenops.settings import KafkaSettings, TopicSettings, load
from tokenops.simulate.ledger import Ledger
from tokenops.simulate.readback import read_topic
from tokenops.simulate.simulator import DEFAULT_MODELS, REGIONS, SimulationConfig, Simulator
from tokenops.topics import TopicSpec, ensure_topics, pipeline_topics

console = Console()


def _models(spec: str | None) -> tuple[tuple[str, str, float], ...]:
    if not spec:
        return DEFAULT_MODELS
    try:
        parts = [item.split(":") for item in spec.split(",")]
        return tuple((m, p, float(w)) for m, p, w in parts)
    except ValueError as exc:
        raise TokenopsError(
            f"--models {spec!r} is not model:provider:weight[,...]",
            hint="for example --models gpt-4o:openai:3,claude-haiku-4-5:anthropic:1",
        ) from exc


def simulate(
    rate: float = typer.Option(1000.0, min=1, help="Records per second to send."),
    duration: float = typer.Option(10.0, min=0.001, help="Seconds of traffic."),
    tenants: int = typer.Option(50, min=1, help="Number of tenants (Zipf-distributed)."),
    zipf: float = typer.Option(1.1, min=0, help="Zipf exponent of tenant traffic."),
    models: str = typer.Option("", help="model:provider:weight,... (default: a mix)."),
    seed: int = typer.Option(-1, help="Random seed; the same seed gives the same events."),
    start_time: str = typer.Option("", help="Event-time start, ISO 8601 (default: now)."),
    duplicates: float = typer.Option(0.0, min=0, max=1, help="Share of duplicate records."),
    late: float = typer.Option(0.0, min=0, max=1, help="Share of late events."),
    late_by: float = typer.Option(120.0, min=0, help="How late, in seconds."),
    malformed: float = typer.Option(0.0, min=0, max=1, help="Share of malformed records."),
    window: int = typer.Option(60, min=1, help="Window size (s) for the summary and --verify."),
    ledger_path: str = typer.Option("tokenops-ledger.json", "--ledger", help="Ledger file."),
    topic: str = typer.Option("", help="Topic (default: TOKENOPS_TOPIC_USAGE)."),
    verify: bool = typer.Option(False, help="Read the topic back and compare with the ledger."),
    region: str = typer.Option(
        "", help="The fleet's region(s), comma-separated (default: a mix of four)."
    ),
) -> None:
    """Send usage events like a fleet of inference nodes and write the ground-truth ledger.

    The ledger (JSON) holds exact expected totals per tenant, model and second, and every
    injected fault (duplicates, late events, malformed records with their bytes).
    """
    kafka = load(KafkaSettings)
    topics = load(TopicSettings)
    topic = topic or topics.usage
    if topic == topics.usage:
        ensure_topics(kafka, pipeline_topics(topics))
    else:  # a topic of its own (e.g. for --verify) gets the usage topic's partitioning
        ensure_topics(kafka, [TopicSpec(topic, topics.partitions, topics.replication_factor)])
    start_ms = None
    if start_time:
        try:
            start_ms = int(datetime.fromisoformat(start_time).timestamp() * 1000)
        except ValueError as exc:
            raise TokenopsError(f"--start-time {start_time!r} is not ISO 8601") from exc
    config = SimulationConfig(
        tenants=tenants,
        zipf_s=zipf,
        models=_models(models),
        rate=rate,
        duration_s=duration,
        seed=seed if seed >= 0 else random.randrange(2**31),
        start_ms=start_ms,
        duplicate_share=duplicates,
        late_share=late,
        late_by_s=late_by,
        malformed_share=malformed,
        regions=tuple(r.strip() for r in region.split(",") if r.strip()) or REGIONS,
    )
    stopping: list[int] = []

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stopping.append(signum)

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, on_signal)
    began = time.monotonic()
    with (
        UsageProducer(kafka, load(ProducerSettings, topic=topic)) as producer,
        Progress(
            TextColumn("simulating"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]:>8.0f} rec/s"),
            TimeElapsedColumn(),
            console=console,
        ) as bar,
    ):
        task = bar.add_task("send", total=config.total_records, rate=0.0)

        def progress(sent: int) -> None:
            elapsed = max(time.monotonic() - began, 1e-9)
            bar.update(task, completed=sent, rate=sent / elapsed)

        ledger = Simulator(config).run(producer, progress=progress, stop=lambda: bool(stopping))
    elapsed = time.monotonic() - began
    ledger.save(ledger_path)
    _summary(ledger, config, elapsed, Path(ledger_path), window)
    if verify:
        _verify(kafka, topic, ledger, window)
    if stopping:
        raise typer.Exit(128 + stopping[0])


def _summary(
    ledger: Ledger, config: SimulationConfig, elapsed: float, path: Path, window: int
) -> None:
    table = Table(title=plain(f"simulation (seed {config.seed}) -> {ledger.topic}"))
    table.add_column("")
    table.add_column("value", justify="right")
    rows = [
        ("records sent", f"{ledger.records_sent:,}"),
        (
            "achieved rate",
            f"{ledger.records_sent / elapsed:,.0f} rec/s (target {config.rate:,.0f})",
        ),
        ("unique events", f"{ledger.unique_events:,}"),
        ("duplicates", f"{len(ledger.duplicates):,}"),
        ("late events", f"{len(ledger.late):,}"),
        ("malformed records", f"{len(ledger.malformed):,}"),
        (f"{window}s windows", f"{len(ledger.expected_windows(window)):,}"),
        ("complete", "yes" if ledger.completed else "[red]no (interrupted)[/]"),
        ("ledger", plain(path)),
    ]
    for name, value in rows:
        table.add_row(name, value)
    console.print(table)


def _verify(kafka: KafkaSettings, topic: str, ledger: Ledger, window: int) -> None:
    """Compare the whole topic with the ledger; the topic must hold only this run."""
    with console.status(f"reading {plain(topic)} back"):
        contents = read_topic(kafka, topic)
    problems = ledger.compare(contents.events, window)
    if sorted(contents.invalid) != sorted(ledger.malformed_values()):
        problems.append(
            f"{len(contents.invalid)} malformed records on the topic, "
            f"{len(ledger.malformed)} in the ledger"
        )
    if problems:
        for line in problems[:20]:
            console.print(f"[red]mismatch[/] {plain(line)}")
        raise TokenopsError(
            f"the topic does not match the ledger ({len(problems)} differences)",
            hint="verify needs a topic that holds only this run: pass a fresh --topic",
        )
    console.print(
        f"[green]verified[/]: {len(contents.events):,} events in {contents.records:,} records "
        f"match the ledger exactly ({len(contents.invalid)} malformed records as injected)"
    )
