"""A tenant is counted only in its home partition, whatever partition its records reach.

Real broker, real `tokenops worker`. Records that land elsewhere (an explicit partition,
no key, librdkafka's default partitioner) are forwarded home and counted there once;
a worker whose state was built with another partition count refuses to start.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewPartitions

from tests.e2e.worker_run import (
    Traffic,
    WorkerProcess,
    dead_letters,
    latest_totals,
    wait_exact,
    worker_env,
)
from tokenops.placement import home_partition
from tokenops.schemas.event import UsageEvent
from tokenops.schemas.wire import encode_event
from tokenops.settings import KafkaSettings

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]
PARTITIONS = 4
COUNTED = 'tokenops_worker_events_total{outcome="counted"}'
FORWARDED = 'tokenops_worker_records_total{outcome="forwarded"}'
BUNDLES = "tokenops_worker_forward_bundles_total"


@pytest.fixture
def topics(new_topic: Callable[..., str]) -> dict[str, str]:
    return {
        "usage": new_topic("usage", partitions=PARTITIONS),
        "aggregates": new_topic("aggs", partitions=PARTITIONS),
        "dead_letter": new_topic("dlq", partitions=PARTITIONS),
        "quota_alerts": new_topic("alerts", partitions=PARTITIONS),
        "quotas": new_topic("quotas", partitions=1),
    }


def _event(event_id: str, tenant: str) -> UsageEvent:
    return UsageEvent(
        id=event_id,
        source="//node/misplaced",
        time=datetime.now(UTC),
        tenant_id=tenant,
        model="gpt-x",
        provider="acme-ai",
        input_tokens=10_000,
        output_tokens=7,
    )


def _remember(traffic: Traffic) -> Callable[[Any, Any], None]:
    """A delivery callback filing the record among the ledger's dead letters to come."""

    def remember(err: Any, msg: Any) -> None:
        assert err is None, err
        traffic.ledger.malformed[(msg.partition(), msg.offset())] = msg.value()

    return remember


def _wait(worker: WorkerProcess, check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.3)
    raise AssertionError(f"{what}:\n{worker.output()[-3000:]}")


def test_one_event_in_every_partition_and_unkeyed_is_counted_once_and_a_new_count_refused(
    kafka_settings: KafkaSettings, topics: dict[str, str], tmp_path: Path
) -> None:
    env = worker_env(kafka_settings, topics, f"home-{uuid.uuid4().hex[:8]}", tmp_path)
    worker = WorkerProcess(env, tmp_path / "state", tmp_path / "worker.log")
    tenant = "tenant-misplaced"
    producer = Producer(kafka_settings.librdkafka())  # defaults: consistent_random
    try:
        worker.wait_ready()
        twice = _event("everywhere", tenant)
        for partition in range(PARTITIONS):  # the same event, keyed, in every partition
            producer.produce(topics["usage"], encode_event(twice), tenant.encode(), partition)
        away = (home_partition(tenant, PARTITIONS) + 1) % PARTITIONS
        producer.produce(topics["usage"], encode_event(twice), None, away)  # unkeyed
        once = _event("unkeyed", tenant)
        producer.produce(topics["usage"], encode_event(once))  # unkeyed, any partition
        assert producer.flush(10) == 0
        _wait(worker, lambda: worker.metric(COUNTED) >= 2, "both events counted")
        window = twice.time_ms - twice.time_ms % 2000
        expected = {}
        for e in (twice, once):
            start = e.time_ms - e.time_ms % 2000
            old = expected.get((tenant, "gpt-x", start), [0] * 6)
            expected[(tenant, "gpt-x", start)] = [old[0] + 10_000, old[1] + 7, 0, 0, 0, old[5] + 1]
        got = wait_exact(kafka_settings, topics, expected, timeout_s=30)
        assert got == expected, (window, got)
        assert worker.metric(COUNTED) == 2
        assert worker.metric(FORWARDED) >= PARTITIONS  # 3 keyed misplaced, 1 unkeyed, ...
        assert not dead_letters(kafka_settings, topics["dead_letter"])
    finally:
        worker.stop()
    # More partitions would re-home tenants away from their state: the worker refuses.
    admin = AdminClient(kafka_settings.librdkafka())
    changelog = f"{env['TOKENOPS_WORKER_APP_ID']}.state-changelog"
    grown = [NewPartitions(t, PARTITIONS + 2) for t in (topics["usage"], changelog)]
    for future in admin.create_partitions(grown).values():
        future.result()
    again = WorkerProcess(env, tmp_path / "state", tmp_path / "again.log")
    try:
        again.proc.wait(60)
        log = again.output()
        assert again.proc.returncode == 70, log[-3000:]
        assert f"the usage topic has {PARTITIONS + 2} partitions" in log, log[-3000:]
        assert "Traceback" not in log, log[-3000:]
    finally:
        again.stop()


def test_a_run_half_from_a_default_librdkafka_producer_equals_the_ledger(
    kafka_settings: KafkaSettings, topics: dict[str, str], tmp_path: Path
) -> None:
    env = worker_env(kafka_settings, topics, f"home-{uuid.uuid4().hex[:8]}", tmp_path)
    worker = WorkerProcess(env, tmp_path / "state", tmp_path / "worker.log")
    traffic = Traffic(kafka_settings, topics["usage"], seed=7, with_default_producer=True)
    try:
        worker.wait_ready()
        for _ in range(4):
            traffic.round(600)
            time.sleep(0.5)
        # keyed as another tenant, by the default producer: dead-lettered where it was
        # written (in a bundle if it landed away from its key's home), with the key rule
        miskeyed = encode_event(_event("miskeyed", "tenant-2"))
        default = traffic.producers[1]
        default.produce(topics["usage"], miskeyed, b"tenant-1", on_delivery=_remember(traffic))
        assert default.flush(10) == 0
        expected = dict(traffic.ledger.totals)
        got = wait_exact(kafka_settings, topics, expected, timeout_s=60)
        missing = {k: v for k, v in expected.items() if got.get(k) != v}
        extra = {k: v for k, v in got.items() if k not in expected}
        assert not missing and not extra, (len(missing), list(missing.items())[:5], extra)
        assert worker.metric(FORWARDED) > 0  # the run did put tenants outside their home
        # each malformed record dead-lettered once, named where the producer wrote it:
        # a keyed one away from its key's home is judged there, inside a bundle
        assert dead_letters(kafka_settings, topics["dead_letter"]) == traffic.ledger.malformed
        assert 0 < worker.metric(BUNDLES) < worker.metric(FORWARDED)
        assert latest_totals(kafka_settings, topics["aggregates"]) == expected
    finally:
        worker.stop()
