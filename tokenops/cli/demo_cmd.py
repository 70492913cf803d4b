"""`tokenops demo`: bring the local stack up and prove the pipeline works, end to end."""

from __future__ import annotations

import time
import uuid

import typer
from confluent_kafka import Consumer, Producer
from rich.console import Console
from rich.progress import Progress

from tokenops.errors import TokenopsError
from tokenops.settings import StackSettings, load
from tokenops.stack import LocalStack
from tokenops.topics import TopicSpec, ensure_topics

console = Console()


def demo(
    records: int = typer.Option(10_000, min=1, help="How many records to send round trip."),
    keep_running: bool = typer.Option(
        False, "--keep-running", help="Leave the local stack up afterwards."
    ),
) -> None:
    """Start the local stack and send records through the real Kafka broker and back."""
    stack = LocalStack(load(StackSettings))
    with console.status("starting the local stack (the first start fetches Kafka's jars)"):
        stack.up()
    try:
        _round_trip(stack, records)
    finally:
        if not keep_running:
            stack.down()
    console.print(
        f"Prometheus: {stack.prometheus.url}   Alertmanager: {stack.alertmanager.url}\n"
        + ("stop the stack with `tokenops stack down`" if keep_running else "stack stopped")
    )


def _round_trip(stack: LocalStack, records: int) -> None:
    kafka = stack.kafka_settings
    topic = f"tokenops.demo.{uuid.uuid4().hex[:8]}"
    ensure_topics(kafka, [TopicSpec(topic, 4, 1)])
    producer = Producer({**kafka.librdkafka(), "enable.idempotence": True, "linger.ms": 5})
    consumer = Consumer({**kafka.librdkafka(), "group.id": topic, "auto.offset.reset": "earliest"})
    consumer.subscribe([topic])
    started = time.monotonic()
    with Progress(console=console) as progress:
        sent = progress.add_task("produced", total=records)
        for i in range(records):
            producer.produce(topic, f"{i}".encode(), key=f"tenant-{i % 50}".encode())
            producer.poll(0)
            progress.advance(sent)
        if producer.flush(30) != 0:
            raise TokenopsError("the broker did not acknowledge every record within 30 s")
        seen: set[int] = set()
        got = progress.add_task("consumed", total=records)
        deadline = time.monotonic() + 60
        while len(seen) < records and time.monotonic() < deadline:
            for message in consumer.consume(1000, timeout=0.5):
                if message.error() is None:
                    seen.add(int(message.value() or b"-1"))
            progress.update(got, completed=len(seen))
    consumer.close()
    if len(seen) != records:
        raise TokenopsError(f"round trip lost records: sent {records}, received {len(seen)}")
    elapsed = time.monotonic() - started
    console.print(f"[green]round trip ok[/]: {records} records through {topic} in {elapsed:.1f} s")
