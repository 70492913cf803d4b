"""Raw events follow the worker's verdicts: a real sink, a real broker, real chDB.

The worker's output is produced as the worker writes it (window totals, and dead
letters with `streams/deadletter.py` headers), so this test pins the sink's side: it
stores what it can read in the tenant's home partition, with the signing key id, and
the billing view leaves out what the worker dead-lettered or counted as a duplicate.
Before, a sink with a keyring or clock of its own stored a record the worker rejected,
and `reconcile` flagged the tenant (finding 8 and the sink half of finding 4).
"""

from __future__ import annotations

import time
from pathlib import Path

from confluent_kafka import KafkaError, Message, Producer

from tests.clickhouse_helpers import event, ms, window
from tests.integration.test_clickhouse_sink import NOV, Harness, harness  # noqa: F401
from tokenops.deadletters import DLQ_BUNDLE
from tokenops.placement import home_partition
from tokenops.schemas.event import UsageEvent
from tokenops.schemas.signing import SIGNATURE_HEADER, signature_header
from tokenops.schemas.wire import EVENT_HEADERS, encode_bundle, encode_event
from tokenops.sinks.clickhouse import ClickHouseSettings, open_store
from tokenops.sinks.clickhouse.decoding import decode_chunk
from tokenops.sinks.clickhouse.migrations import load_migrations, migrate
from tokenops.sinks.clickhouse.reconcile import reconcile
from tokenops.sinks.clickhouse.rows import EVENT_COLUMNS
from tokenops.streams.deadletter import dead_letter_record

OLD_KEY = ("node-a-2026-10", b"a-retired-secret-4f1d9c2b7e")
T = ms(2026, 11, 3, 10, 0)


def _produce(
    h: Harness,
    topic: str,
    value: bytes,
    key: bytes,
    partition: int,
    headers: list[tuple[str, bytes]],
) -> tuple[int, int]:
    """Produce one record; returns its (partition, offset)."""
    producer = Producer(h.kafka.librdkafka())
    where: list[Message] = []

    def delivered(error: KafkaError | None, message: Message) -> None:
        assert error is None, error
        where.append(message)

    producer.produce(topic, value, key, partition=partition, headers=headers, on_delivery=delivered)
    assert producer.flush(30) == 0
    partition_, offset = where[0].partition(), where[0].offset()
    assert partition_ is not None and offset is not None
    return partition_, offset


def test_raw_events_and_window_totals_agree_on_every_verdict(harness: Harness) -> None:  # noqa: F811
    h = harness
    home = home_partition("acme", 2)
    usage, dlq = h.topics.usage, h.topics.dead_letter

    def send(
        n: int, *, partition: int = home, signed: bool = False, **tokens: int
    ) -> tuple[int, int]:
        e = event("acme", "gpt-4o", T + n, 1 if n == 4 else n, **tokens)
        headers = list(EVENT_HEADERS)
        if signed:
            headers.append((SIGNATURE_HEADER, signature_header(*OLD_KEY, [e])))
        return _produce(h, usage, encode_event(e), b"acme", partition, headers)

    def dead_letter(
        position: tuple[int, int], reason: str, field: str, bundle: bytes | None = None
    ) -> None:
        _, headers = dead_letter_record(
            b"(the original record)",
            [],
            reason=reason,
            field=field,
            topic=usage,
            partition=position[0],
            offset=position[1],
            time_ms=T + 60_000,
        )
        if bundle is not None:  # read at home in a bundle: where, and which element
            headers.append((DLQ_BUNDLE, bundle))
        _produce(h, dlq, b"(the original record)", b"acme", position[0], headers)

    def bundle(*events: UsageEvent) -> tuple[int, int]:
        """The events' records as a worker forwards them home: one unkeyed bundle, as if
        written at offsets 100, 101, ... of the other partition."""
        n = len(events)
        written = ([1 - home] * n, list(range(100, 100 + n)))
        value, headers = encode_bundle(
            ["acme"] * n, [encode_event(e) for e in events], [1] * n, written, [T] * n
        )
        return _produce(h, usage, value, None, home, headers)

    send(1)  # counted: evt-1
    too_late = send(2, input_tokens=777)  # the worker: older than its dedup horizon
    forged = send(3, signed=True, input_tokens=555)  # the worker: key retired, rejected
    send(4, input_tokens=9_000)  # evt-1 again: a duplicate the worker did not count
    send(5, partition=1 - home, input_tokens=4_000)  # not home: the worker forwards it
    # a bundle: its first element counted, its second too late, its third evt-1 again
    _, at = bundle(
        event("acme", "gpt-4o", T + 6, 6),
        event("acme", "gpt-4o", T + 7, 7, input_tokens=333),
        event("acme", "gpt-4o", T + 8, 1, input_tokens=8_000),
    )
    dead_letter(too_late, "too_late: older than the dedup horizon", "time")
    dead_letter(forged, "signature: unknown_key: kid 'node-a-2026-10'", "signature")
    too_late_element = b"%d:%d:1" % (home, at)
    dead_letter((1 - home, 101), "too_late: older than the dedup horizon", "time", too_late_element)
    counted = window("acme", "gpt-4o", T - T % 60_000, events=2)
    _produce(h, h.topics.aggregates, counted.to_bytes(), counted.key.encode(), 0, [])

    h.start(h.writer())
    h.wait(
        lambda: (
            h.query("SELECT count() FROM raw_events") == [(7,)]
            and h.query("SELECT count() FROM dead_letters") == [(3,)]
            and h.query("SELECT count() FROM window_totals") == [(1,)]
        )
    )
    h.stop_all()
    assert h.query("SELECT id, input_tokens FROM raw_events_latest ORDER BY id") == [
        ("evt-1", 1000),
        ("evt-6", 1000),
    ]
    rejected = h.query(
        "SELECT id, input_tokens, field, reason, key_id FROM raw_events_rejected ORDER BY id"
    )
    assert rejected == [
        ("evt-2", 777, "time", "too_late: older than the dedup horizon", ""),
        ("evt-3", 555, "signature", "signature: unknown_key: kid 'node-a-2026-10'", OLD_KEY[0]),
        ("evt-7", 333, "time", "too_late: older than the dedup horizon", ""),
    ]
    with h.lock:
        checks, differences = reconcile(h.store.client, *NOV)
    assert "raw_events vs window_totals" in checks
    assert differences == []


def test_the_verdicts_migration_keeps_stored_events_and_can_run_again(
    chdb_dsn: str, tmp_path: Path
) -> None:
    with open_store(ClickHouseSettings(url=chdb_dsn, http_port=0), tmp_path) as store:
        migrate(store.client, 30, migrations=load_migrations()[:4])
        # a day old: the table keeps raw events 30 days, so a fixed date would expire
        recent = (int(time.time() * 1000) // 3_600_000 - 24) * 3_600_000
        e = event("acme", "gpt-4o", recent, 1)
        columns, _ = decode_chunk([(encode_event(e), EVENT_HEADERS, 0, 7)])
        later = ("key_id", "kafka_element")  # columns of migrations after the fourth
        old_columns = [n for n in EVENT_COLUMNS if n not in later]
        store.client.insert(
            "raw_events",
            [c for n, c in zip(EVENT_COLUMNS, columns, strict=True) if n not in later],
            column_names=old_columns,
            column_oriented=True,
        )
        # the rebuilt table lost its TTL; migrate puts the retention back at once
        assert migrate(store.client, 30, migrations=load_migrations()[:5]) == [
            "migration 0005_verdicts",
            "raw_events retention: 30 days",
        ]
        (verdicts,) = [m for m in load_migrations() if m.name == "verdicts"]
        for statement in verdicts.statements():  # a crash before the ledger row: again
            store.client.command(statement)
        rows = store.client.query("SELECT id, key_id FROM raw_events_latest")
        assert rows.result_rows == [("evt-1", "")]
        assert migrate(store.client, 30) == [
            "migration 0006_finality",
            "migration 0007_window_region",
            "migration 0008_bundle_elements",
            "raw_events retention: 30 days",
        ]
        (bundles,) = [m for m in load_migrations() if m.name == "bundle_elements"]
        for statement in bundles.statements():  # and this one, again
            store.client.command(statement)
        rows = store.client.query("SELECT id, key_id FROM raw_events_latest")
        assert rows.result_rows == [("evt-1", "")]
        assert migrate(store.client, 30) == []
