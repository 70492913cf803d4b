"""A worker restarted after kill -9 counts again within seconds, not after the session
timeout: it rejoins the group as the same static member (group.instance.id)."""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.e2e.worker_run import Traffic, WorkerProcess, wait_exact, worker_env
from tokenops.settings import KafkaSettings

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

SESSION_TIMEOUT_S = 30  # the default; a dynamic member's restart waited this long
COUNTED = 'tokenops_worker_events_total{outcome="counted"}'


def _until_counting(worker: WorkerProcess, traffic: Traffic, timeout_s: float) -> float:
    """Send events until the worker counts one; seconds from now until it did."""
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        assert worker.proc.poll() is None, worker.output()[-3000:]
        traffic.round(20)
        with contextlib.suppress(OSError):  # its HTTP server may not be up yet
            if worker.metric(COUNTED) > 0:
                return time.monotonic() - started
        time.sleep(0.1)
    raise AssertionError(f"nothing counted {timeout_s} s after the restart")


def test_a_worker_restarted_after_kill_9_counts_within_seconds(
    kafka_settings: KafkaSettings, new_topic: Callable[..., str], tmp_path: Path
) -> None:
    topics = {
        "usage": new_topic("usage", partitions=2),
        "aggregates": new_topic("aggs", partitions=2),
        "dead_letter": new_topic("dlq", partitions=2),
        "quota_alerts": new_topic("alerts", partitions=2),
        "quotas": new_topic("quotas", partitions=1),
    }
    env = worker_env(kafka_settings, topics, f"w-{uuid.uuid4().hex[:8]}", tmp_path)
    env["TOKENOPS_WORKER_SESSION_TIMEOUT_S"] = str(SESSION_TIMEOUT_S)
    state, log = tmp_path / "state", tmp_path / "worker.log"
    traffic = Traffic(kafka_settings, topics["usage"], seed=5)
    worker = WorkerProcess(env, state, log)
    try:
        _until_counting(worker, traffic, timeout_s=60)
        worker.kill()
        worker = WorkerProcess(env, state, log)
        resumed_s = _until_counting(worker, traffic, timeout_s=SESSION_TIMEOUT_S / 2)
        print(f"restart to first counted event: {resumed_s:.1f} s")
        assert resumed_s < SESSION_TIMEOUT_S / 3
        expected = dict(traffic.ledger.totals)
        assert wait_exact(kafka_settings, topics, expected, timeout_s=60) == expected
    finally:
        worker.stop()
