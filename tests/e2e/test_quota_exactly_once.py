"""The quota-alerts topic holds exactly one record per crossing: traffic with duplicates,
late and malformed records, and the worker killed with SIGKILL three times mid-run.

31 tenants, each with a daily quota alerting every 5 % up to 100 %, so crossings happen
all through the run. The expected crossings come from the traffic's ledger of unique
events; the topic must hold those keys, each exactly once, and nothing else.
"""

from __future__ import annotations

import random
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.e2e.worker_run import Traffic, WorkerProcess, worker_env
from tokenops.quotas.topic import publish_quotas
from tokenops.schemas.quota import QuotaAlert, QuotaDefinition, period_bounds
from tokenops.settings import KafkaSettings, TopicSettings
from tokenops.topics import read_to_end

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]
LIMIT = 1_000_000
THRESHOLDS = tuple(range(5, 105, 5))


@pytest.fixture
def topics(new_topic: Callable[..., str]) -> dict[str, str]:
    return {
        "usage": new_topic("usage", partitions=4),
        "aggregates": new_topic("aggs", partitions=4, config={"cleanup.policy": "compact"}),
        "dead_letter": new_topic("dlq", partitions=4),
        "quota_alerts": new_topic("alerts", partitions=4),
        "quotas": new_topic("quotas", partitions=1, config={"cleanup.policy": "compact"}),
    }


def expected_crossings(traffic: Traffic) -> set[str]:
    used: dict[tuple[str, int], int] = defaultdict(int)
    for (tenant, _model, window_start), totals in traffic.ledger.totals.items():
        day_start, _ = period_bounds("day", window_start)
        used[(tenant, day_start)] += totals[0] + totals[1]  # input + output tokens
    return {
        f"{tenant}|daily|{day}|{pct}"
        for (tenant, day), tokens in used.items()
        for pct in THRESHOLDS
        if tokens * 100 >= LIMIT * pct
    }


def test_one_record_per_crossing_through_duplicates_late_events_and_kill_9(
    kafka_settings: KafkaSettings,
    topics: dict[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)  # Faust puts its `<app id>-data` folder in the cwd
    quotas = [
        QuotaDefinition(
            tenant_id=f"tenant-{i}",
            name="daily",
            period="day",
            limit=LIMIT,
            thresholds_pct=THRESHOLDS,
        )
        for i in range(31)
    ]
    publish_quotas(kafka_settings, TopicSettings(**topics), quotas)
    env = worker_env(kafka_settings, topics, f"quota-eo-{uuid.uuid4().hex[:8]}", tmp_path)
    log = tmp_path / "worker.log"
    traffic = Traffic(kafka_settings, topics["usage"], seed=5)
    rng = random.Random(13)
    kills = sorted(rng.sample(range(2, 14), 3))
    worker = WorkerProcess(env, tmp_path / "state", log)
    worker.wait_ready()
    try:
        for i in range(16):
            traffic.round(800)
            time.sleep(rng.uniform(0.05, 0.6))
            if i in kills:
                worker.kill()
                worker = WorkerProcess(env, tmp_path / "state", log)
        expected = expected_crossings(traffic)
        deadline = time.monotonic() + 90
        while True:
            records = read_to_end(kafka_settings, topics["quota_alerts"])
            keys = Counter(QuotaAlert.from_bytes(m.value()).key for m in records)
            if set(keys) >= expected or time.monotonic() > deadline:
                break
            time.sleep(1)
    finally:
        worker.stop()

    assert len(expected) > 300  # crossings all through the run, across the kills
    missing, extra = expected - set(keys), set(keys) - expected
    assert not missing and not extra, (sorted(missing)[:5], sorted(extra)[:5])
    repeated = {key: n for key, n in keys.items() if n > 1}
    assert not repeated, f"{len(repeated)} crossings published more than once: {repeated}"
