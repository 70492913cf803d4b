"""Event time is bounded by a clock the producer does not set.

Real broker, real `tokenops worker`, on a usage topic that accepts any producer
timestamp (`message.timestamp.after.max.ms` raised). A hostile producer sends one event
64 minutes ahead and one dated 2400, each with a record timestamp to match. Both are
dead-lettered as `future`; a neighbour in the same partition then goes 60 % over a
per-minute quota: its totals are exact, no event of it is late or corrected, and every
quota threshold alerts.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from confluent_kafka import Producer

from tests.e2e.worker_run import WINDOW_S, WorkerProcess, dead_letters, wait_exact, worker_env
from tokenops.deadletters import DLQ_FIELD
from tokenops.quotas.topic import publish_quotas
from tokenops.schemas.event import FUTURE, UsageEvent
from tokenops.schemas.quota import QuotaDefinition
from tokenops.schemas.wire import encode_event
from tokenops.settings import KafkaSettings, TopicSettings
from tokenops.topics import read_to_end

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]
NEIGHBOUR, HOSTILE, LIMIT = "clock-neighbour", "clock-hostile", 10_000


@pytest.fixture
def topics(new_topic: Callable[..., str]) -> dict[str, str]:
    compacted = {"cleanup.policy": "compact"}
    any_time = {"message.timestamp.after.max.ms": str(2**63 - 1)}
    return {
        "usage": new_topic("usage", partitions=1, config=any_time),
        "aggregates": new_topic("aggs", partitions=1, config=compacted),
        "dead_letter": new_topic("dlq", partitions=1),
        "quota_alerts": new_topic("alerts", partitions=1),
        "quotas": new_topic("quotas", partitions=1, config=compacted),
    }


def _event(event_id: str, tenant: str, when: datetime, tokens: int) -> UsageEvent:
    fields = {
        "id": event_id,
        "source": "//node/clock",
        "time": when,
        "tenant_id": tenant,
        "model": "gpt-x",
        "provider": "acme-ai",
        "input_tokens": tokens,
        "output_tokens": 0,
    }
    # a hostile producer skips the SDK's own check of the clock skew
    return UsageEvent.model_validate(fields, context={"max_future_skew_s": 10**12})


def _wait_records(worker: WorkerProcess, n: int) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        done = sum(
            worker.metric(f'tokenops_worker_records_total{{outcome="{outcome}"}}')
            for outcome in ("counted", "dead_lettered")
        )
        if done >= n:
            return
        time.sleep(0.2)
    raise AssertionError(f"{n} records not processed:\n{worker.output()[-3000:]}")


def test_far_future_events_are_dead_lettered_and_leave_neighbours_untouched(
    kafka_settings: KafkaSettings, topics: dict[str, str], tmp_path: Path
) -> None:
    quota = QuotaDefinition(tenant_id=NEIGHBOUR, name="per-minute", period="minute", limit=LIMIT)
    publish_quotas(kafka_settings, TopicSettings(**topics), [quota])
    env = worker_env(kafka_settings, topics, f"clock-{uuid.uuid4().hex[:8]}", tmp_path)
    worker = WorkerProcess(env, tmp_path / "state", tmp_path / "worker.log")
    producer = Producer(kafka_settings.librdkafka())
    sent: list[UsageEvent] = []

    def send(e: UsageEvent, timestamp_ms: int | None = None) -> None:
        extra = {} if timestamp_ms is None else {"timestamp": timestamp_ms}
        producer.produce(topics["usage"], encode_event(e), e.tenant_id.encode(), **extra)
        assert producer.flush(10) == 0

    try:
        worker.wait_ready()
        now = datetime.now(UTC)
        sent.append(_event("before", NEIGHBOUR, now, 100))
        send(sent[-1])
        for name, when in (
            ("ahead-64-min", now + timedelta(minutes=64)),
            ("year-2400", datetime(2400, 1, 1, tzinfo=UTC)),
        ):
            hostile = _event(name, HOSTILE, when, 5)
            send(hostile, timestamp_ms=hostile.time_ms)  # the producer's clock agrees
        _wait_records(worker, 3)  # the hostile records are behind, in an earlier batch
        # the neighbour goes 60 % over its per-minute quota, all in one minute
        burst = datetime.now(UTC)
        for i in range(8):
            sent.append(_event(f"burst-{i}", NEIGHBOUR, burst, 2_000))
            send(sent[-1])

        expected: dict[tuple[str, str, int], list[int]] = {}
        for e in sent:
            start = e.time_ms - e.time_ms % (WINDOW_S * 1000)
            totals = expected.setdefault((e.tenant_id, e.model, start), [0] * 6)
            totals[0] += e.input_tokens
            totals[5] += 1
        got = wait_exact(kafka_settings, topics, expected, timeout_s=60)
        assert got == expected, worker.output()[-3000:]

        letters = read_to_end(kafka_settings, topics["dead_letter"])
        assert sorted(dict(m.headers() or [])[DLQ_FIELD] for m in letters) == [FUTURE.encode()] * 2
        assert len(dead_letters(kafka_settings, topics["dead_letter"])) == 2
        assert worker.metric("tokenops_worker_late_events_total") == 0
        assert worker.metric("tokenops_worker_corrections_total") == 0

        minute = burst.replace(second=0, microsecond=0)
        start_ms = int(minute.timestamp() * 1000)
        keys = {
            (m.key() or b"").decode() for m in read_to_end(kafka_settings, topics["quota_alerts"])
        }
        for pct in (50, 80, 100):
            assert f"{NEIGHBOUR}|per-minute|{start_ms}|{pct}" in keys, keys
    finally:
        worker.stop()
