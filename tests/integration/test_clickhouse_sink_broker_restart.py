"""The ClickHouse sink through a restart of its broker that outlasts the group session.

A broker of the test's own (the session's broker is shared). The sink holds a batch it
cannot write yet when the broker stops; the write succeeds while the broker is away, so
the batch's commit fails (`_WAIT_COORD`), and the session times out (the sink rejoins
its group) before the broker is back: the pattern of the chaos test's broker restart
(`tests/e2e/test_chaos.py`). Afterwards every record is stored once and every offset is
committed, without a new record or a restart of the sink.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from tests.integration.test_clickhouse_sink import (
    Harness,
    expected_totals,
    produce,
    sink_settings,
    stored_totals,
    windows_batch,
)
from tokenops.settings import KafkaSettings, StackSettings, TopicSettings
from tokenops.sinks.clickhouse import open_store
from tokenops.sinks.clickhouse.service import prepare_store
from tokenops.stack.kafka import KafkaBroker
from tokenops.stack.process import free_port
from tokenops.topics import TopicSpec, ensure_topics

pytestmark = pytest.mark.integration

SESSION_TIMEOUT_MS = 6000  # the broker's minimum, as in the chaos test: the outage outlasts it


def test_sink_resumes_and_commits_everything_after_a_broker_restart(
    tmp_path: Path, chdb_dsn: str
) -> None:
    stack = StackSettings(
        state_dir=tmp_path / "stack",
        kafka_port=free_port(),
        kafka_controller_port=free_port(),
        kafka_heap_mb=512,
    )
    broker = KafkaBroker(stack)
    broker.start()
    try:
        kafka = KafkaSettings(
            bootstrap_servers=broker.bootstrap_servers,
            client_config={"session.timeout.ms": str(SESSION_TIMEOUT_MS)},
        )
        topics = TopicSettings(aggregates="aggregates", usage="usage", dead_letter="dlq")
        ensure_topics(kafka, [TopicSpec(t, 2, 1) for t in ("aggregates", "usage", "dlq")])
        settings = sink_settings(chdb_dsn)
        with open_store(settings, tmp_path) as store:
            prepare_store(store, None)
            h = Harness(kafka, topics, settings, store, threading.Lock())
            try:
                restart_under_an_uncommitted_batch(h, broker)
            finally:
                h.stop_all()
    finally:
        broker.stop()


def restart_under_an_uncommitted_batch(h: Harness, broker: KafkaBroker) -> None:
    writer = h.writer()
    h.start(writer)
    first = windows_batch(0, 60)
    produce(h, first, events=50)
    h.wait(lambda: h.committed() == h.ends())

    writer.down = True  # the sink holds the next batch, unwritten, when the broker stops
    second = windows_batch(1, 30)
    produce(h, second, events=20, offset=50)
    ends = h.ends()
    h.wait(lambda: writer.failures >= 3)
    broker.stop()
    writer.down = False  # written while the broker is away: its commit fails
    time.sleep(SESSION_TIMEOUT_MS / 1000 + 3)  # the session times out: the sink rejoins
    broker.start()
    h.wait(lambda: h.committed() == ends, timeout_s=60)
    assert stored_totals(h) == expected_totals(first + second)
    assert h.query("SELECT count() FROM raw_events_latest") == [(70,)]
