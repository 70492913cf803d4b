"""`UsageProducer.send_columns`, `sync` and tickets, the SDK calls the HTTP API stands on:
decoded columns go out through the batcher, and `sync` is True, or a ticket resolved,
only once they are acknowledged (or fsynced in the spool)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.integration.test_producer import fields, producer_settings
from tokenops.producers import ProducerBackpressureError, UsageProducer
from tokenops.producers.spool import read_entries
from tokenops.producers.tickets import Ticket
from tokenops.schemas import EventColumns, UsageEvent, decode_record
from tokenops.settings import KafkaSettings
from tokenops.stack.process import free_port
from tokenops.topics import read_to_end

pytestmark = pytest.mark.integration


def test_send_columns_then_sync_means_on_the_topic(
    kafka_settings: KafkaSettings, new_topic: Callable[..., str], tmp_path: Path
) -> None:
    topic = new_topic()
    parts = [
        EventColumns.from_events([UsageEvent(**fields(i, tenant=t)) for i in range(50)])
        for t in ("acme", "globex")
    ]
    settings = producer_settings(topic, tmp_path / "spool", linger_ms=60_000)
    with UsageProducer(kafka_settings, settings) as producer:
        assert producer.send_columns(parts) == 100
        assert producer.sync(10) is True  # without waiting for the 60 s linger
        stored = [
            (e.tenant_id, e.id)
            for m in read_to_end(kafka_settings, topic)
            for e in decode_record(m.value(), m.headers())
        ]
    assert sorted(stored) == sorted((t, f"evt-{i}") for t in ("acme", "globex") for i in range(50))


def test_send_columns_is_all_or_none_at_the_queue_limit(
    kafka_settings: KafkaSettings, new_topic: Callable[..., str], tmp_path: Path
) -> None:
    part = EventColumns.from_events([UsageEvent(**fields(i)) for i in range(10)])
    settings = producer_settings(
        new_topic(),
        tmp_path / "spool",
        max_outstanding_events=5,
        backpressure_timeout_s=0,
        linger_ms=60_000,
    )
    with UsageProducer(kafka_settings, settings) as producer:
        producer.send_columns([part])  # room when asked: taken whole
        with pytest.raises(ProducerBackpressureError):
            producer.send_columns([part])  # 10 outstanding >= 5: none taken
        assert producer.outstanding() == 10


def test_sync_of_one_event_takes_the_broker_round_trip_not_a_poll_interval(
    kafka_settings: KafkaSettings, new_topic: Callable[..., str], tmp_path: Path
) -> None:
    """Each single-event POST /v1/events waits for one `sync`. The producer's poll thread
    may serve the delivery report a flush waits for; a flush then sleeps out librdkafka's
    10 ms poll step, which capped a server at ~100 durability rounds per second. The best
    of 30 rounds is a round trip to a local broker (about 1 to 3 ms), far below 10 ms
    even on a loaded machine."""
    settings = producer_settings(new_topic(), tmp_path / "spool")
    rounds = []
    with UsageProducer(kafka_settings, settings) as producer:
        for i in range(40):
            producer.send_columns([EventColumns.from_events([UsageEvent(**fields(i))])])
            started = time.perf_counter()
            assert producer.sync(10) is True
            rounds.append(time.perf_counter() - started)
    assert min(rounds[10:]) < 0.008, f"best sync round {min(rounds[10:]) * 1000:.1f} ms"


def test_a_ticket_is_resolved_once_each_of_its_records_is_acknowledged(
    kafka_settings: KafkaSettings, new_topic: Callable[..., str], tmp_path: Path
) -> None:
    """The HTTP API's wait: a ticket resolves when every record holding its events is
    on the topic (here three: two of one tenant, split at `batch_max_events`, and one
    of another), not before, and buffered events wait for `produce_buffered`."""
    topic = new_topic()
    settings = producer_settings(topic, tmp_path / "spool", linger_ms=60_000, batch_max_events=30)
    resolved = threading.Event()
    outcome: list[BaseException | None] = []
    ticket = Ticket(lambda error: (outcome.append(error), resolved.set()))
    parts = [
        EventColumns.from_events([UsageEvent(**fields(i, tenant="acme")) for i in range(50)]),
        EventColumns.from_events([UsageEvent(**fields(i, tenant="globex")) for i in range(5)]),
    ]
    with UsageProducer(kafka_settings, settings) as producer:
        assert producer.send_columns(parts, ticket) == 55
        assert ticket.records == 3
        assert not resolved.wait(0.5)  # 25 events still wait in their buffers
        producer.produce_buffered()
        assert resolved.wait(10) and outcome == [None]
        stored = [
            (e.tenant_id, e.id)
            for m in read_to_end(kafka_settings, topic)
            for e in decode_record(m.value(), m.headers())
        ]
    assert len(stored) == 55


def test_a_ticket_of_an_undeliverable_record_resolves_once_the_spool_is_fsynced(
    tmp_path: Path,
) -> None:
    """No broker: the record fails delivery, is spooled, and its ticket resolves only
    after the spool file holds it and was fsynced (a 2xx may then be answered)."""
    nobody = KafkaSettings(bootstrap_servers=f"127.0.0.1:{free_port()}")
    settings = producer_settings("t", tmp_path / "spool", delivery_timeout_ms=1000)
    seen: list[tuple[BaseException | None, int, bool]] = []
    resolved = threading.Event()
    with UsageProducer(nobody, settings) as producer:

        def on_durable(error: BaseException | None) -> None:
            spooled = sum(1 for f in (tmp_path / "spool").glob("spool-*") for _ in read_entries(f))
            seen.append((error, spooled, producer._spool._dirty))  # the fsync came first
            resolved.set()

        part = EventColumns.from_events([UsageEvent(**fields(i)) for i in range(3)])
        producer.send_columns([part], Ticket(on_durable))
        producer.produce_buffered()
        assert resolved.wait(20)
    assert seen == [(None, 1, False)]
