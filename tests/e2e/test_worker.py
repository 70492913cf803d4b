"""The stream worker end to end: real broker, real `tokenops worker` processes, kill -9.

Traffic has 5% duplicates, late events inside and beyond the allowed lateness and 1%
malformed records; the latest revision of every aggregate must equal the ledger exactly
and the dead-letter topic must hold exactly the malformed records.
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.e2e.worker_run import (
    WINDOW_S,
    Traffic,
    WorkerProcess,
    dead_letters,
    wait_exact,
    worker_env,
)
from tokenops.settings import KafkaSettings

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]


@pytest.fixture
def topics(new_topic: Callable[..., str]) -> dict[str, str]:
    return {
        "usage": new_topic("usage", partitions=4),
        "aggregates": new_topic("aggs", partitions=4),
        "dead_letter": new_topic("dlq", partitions=4),
        "quota_alerts": new_topic("alerts", partitions=4),
        "quotas": new_topic("quotas", partitions=1),
    }


def _check(
    kafka: KafkaSettings, topics: dict[str, str], traffic: Traffic, logs: list[Path]
) -> None:
    expected = dict(traffic.ledger.totals)
    got = wait_exact(kafka, topics, expected, timeout_s=60)
    if got != expected:
        for log in logs:
            print(log.read_text()[-5000:])
    missing = {k: v for k, v in expected.items() if got.get(k) != v}
    extra = {k: v for k, v in got.items() if k not in expected}
    assert not missing and not extra, (len(missing), list(missing.items())[:5], extra)
    assert dead_letters(kafka, topics["dead_letter"]) == traffic.ledger.malformed
    assert traffic.ledger.malformed  # the run did produce some


def test_exact_totals_with_duplicates_late_and_malformed(
    kafka_settings: KafkaSettings, topics: dict[str, str], tmp_path: Path
) -> None:
    env = worker_env(kafka_settings, topics, f"w-{uuid.uuid4().hex[:8]}", tmp_path)
    log = tmp_path / "worker.log"
    worker = WorkerProcess(env, tmp_path / "state", log)
    worker.wait_ready()
    traffic = Traffic(kafka_settings, topics["usage"], seed=1)
    try:
        for _ in range(8):
            traffic.round(700)
            time.sleep(0.5)
        _check(kafka_settings, topics, traffic, [log])
    finally:
        worker.stop()


def test_simulator_run_latest_revisions_equal_the_ledger(
    kafka_settings: KafkaSettings, topics: dict[str, str], tmp_path: Path
) -> None:
    """The fleet simulator's ledger is the judge (its late events are 3 s late, beyond
    the 1 s lateness; the traffic of the other tests also has late events inside it)."""
    from tokenops.producers.producer import UsageProducer
    from tokenops.producers.settings import ProducerSettings
    from tokenops.simulate.simulator import SimulationConfig, Simulator

    env = worker_env(kafka_settings, topics, f"w-{uuid.uuid4().hex[:8]}", tmp_path)
    log = tmp_path / "worker.log"
    worker = WorkerProcess(env, tmp_path / "state", log)
    worker.wait_ready()
    config = SimulationConfig(
        tenants=40,
        rate=1500,
        duration_s=6,
        seed=11,
        duplicate_share=0.05,
        late_share=0.05,
        late_by_s=3,
        malformed_share=0.01,
    )
    settings = ProducerSettings(
        topic=topics["usage"], batch_max_events=50, spool_dir=tmp_path / "spool"
    )
    try:
        with UsageProducer(kafka_settings, settings) as producer:
            ledger = Simulator(config).run(producer)
        assert ledger.completed and ledger.malformed and ledger.late and ledger.duplicates
        expected = {k: list(v) for k, v in ledger.expected_windows(WINDOW_S).items()}
        got = wait_exact(kafka_settings, topics, expected, timeout_s=60)
        if got != expected:
            print(log.read_text()[-5000:])
        assert got == expected
        values = sorted(dead_letters(kafka_settings, topics["dead_letter"]).values())
        assert values == sorted(ledger.malformed_values())
    finally:
        worker.stop()


def test_kill_9_three_times_and_restart_keeps_totals_exact(
    kafka_settings: KafkaSettings, topics: dict[str, str], tmp_path: Path
) -> None:
    env = worker_env(kafka_settings, topics, f"w-{uuid.uuid4().hex[:8]}", tmp_path)
    log = tmp_path / "worker.log"
    # half from a default librdkafka producer: records away from home go there in
    # bundles, which a kill may re-forward (home deduplicates them)
    traffic = Traffic(kafka_settings, topics["usage"], seed=2, with_default_producer=True)
    rng = random.Random(7)
    kills = sorted(rng.sample(range(1, 9), 3))
    worker = WorkerProcess(env, tmp_path / "state", log)
    worker.wait_ready()
    try:
        for i in range(10):
            traffic.round(700)
            time.sleep(rng.uniform(0.05, 0.6))
            if i in kills:
                worker.kill()  # mid-stream: records of this round are still in flight
                worker = WorkerProcess(env, tmp_path / "state", log)
                worker.wait_ready()
        _check(kafka_settings, topics, traffic, [log])
        assert log.read_text().count("assigned partitions=") >= 4  # 3 restarts recovered
    finally:
        worker.stop()


def test_two_workers_one_killed_survivor_takes_over(
    kafka_settings: KafkaSettings, topics: dict[str, str], tmp_path: Path
) -> None:
    env = worker_env(kafka_settings, topics, f"w-{uuid.uuid4().hex[:8]}", tmp_path)
    logs = [tmp_path / "a.log", tmp_path / "b.log"]
    traffic = Traffic(kafka_settings, topics["usage"], seed=3)
    a = WorkerProcess(env, tmp_path / "state-a", logs[0])
    b = WorkerProcess(env, tmp_path / "state-b", logs[1])
    try:
        a.wait_ready()
        b.wait_ready()
        for i in range(10):
            traffic.round(700)
            time.sleep(0.5)
            if i == 4:
                assert a.metric('tokenops_worker_records_total{outcome="counted"}') > 0
                a.kill()
        _check(kafka_settings, topics, traffic, logs)
        # the survivor took a's partitions over (after a rebalance without a)
        assignments = [x for x in logs[1].read_text().splitlines() if "assigned partitions=" in x]
        assert "assigned partitions=[0, 1, 2, 3]" in assignments[-1]
    finally:
        a.stop()
        b.stop()
