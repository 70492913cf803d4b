"""A backlog of unique ids, larger than any one changelog record may be, caught up exactly.

1,000,000 events of one tenant with unique ids wait in one partition before the worker
starts; every topic, the changelog included, keeps the broker's default 1 MiB
`max.message.bytes`. A catch-up batch then carries hundreds of thousands of new dedup
keys, a state delta of several MB: it must reach the changelog in parts, survive a
kill -9 in the middle of the catch-up, and end with totals equal to what was produced.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bench.pipeline_load import MODELS, BatchLoad, cloudevent
from tests.e2e.worker_run import WINDOW_S, WorkerProcess, dead_letters, wait_exact, worker_env
from tokenops.schemas.event import UsageEvent
from tokenops.settings import KafkaSettings
from tokenops.streams.state.delta import DEFAULT_PART_BYTES, PART_KEY
from tokenops.topics import read_to_end

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

EVENTS = 1_000_000
COUNTED = 'tokenops_worker_events_total{outcome="counted"}'


def _expected(tenant: str, t_ms: int) -> dict[tuple[str, str, int], list[int]]:
    """The window totals of EVENTS events of `BatchLoad`'s first tenant at `t_ms`."""
    ce = cloudevent(tenant, MODELS[0], "x", t_ms, 1500)
    event = UsageEvent(
        id="x", source=ce["source"], time=datetime.fromtimestamp(t_ms / 1000, UTC), **ce["data"]
    )
    start = t_ms - t_ms % (WINDOW_S * 1000)
    return {(tenant, MODELS[0], start): [v * EVENTS for v in event.tokens().values()] + [EVENTS]}


def test_a_million_unique_ids_backlog_survives_kill_9_at_the_default_record_limit(
    kafka_settings: KafkaSettings, new_topic: Callable[..., str], tmp_path: Path
) -> None:
    topics = {
        "usage": new_topic("usage", partitions=1),
        "aggregates": new_topic("aggs", partitions=1),
        "dead_letter": new_topic("dlq", partitions=1),
        "quota_alerts": new_topic("alerts", partitions=1),
        "quotas": new_topic("quotas", partitions=1),
    }
    changelog = new_topic("changelog", partitions=1)  # created as an operator would
    load = BatchLoad(kafka_settings, topics["usage"], tenants=1, per_record=1000)
    t_ms = int(time.time() * 1000)
    load.fill(EVENTS, t_ms)
    env = worker_env(kafka_settings, topics, f"w-{uuid.uuid4().hex[:8]}", tmp_path)
    env["TOKENOPS_WORKER_CHANGELOG_TOPIC"] = changelog
    state, log = tmp_path / "state", tmp_path / "worker.log"

    first = WorkerProcess(env, state, log)
    deadline = time.monotonic() + 90
    counted = 0.0
    try:
        while counted < 200_000:  # mid catch-up: at least one multi-part delta written
            assert first.proc.poll() is None, first.output()[-3000:]
            assert time.monotonic() < deadline, first.output()[-3000:]
            with contextlib.suppress(OSError):  # its HTTP server may not be up yet
                counted = first.metric(COUNTED)
            time.sleep(0.1)
        assert counted < EVENTS, "the catch-up ended before the kill: nothing was tested"
    finally:
        first.kill()

    second = WorkerProcess(env, state, log)
    try:
        expected = _expected(load.names[0], t_ms)
        got = wait_exact(kafka_settings, topics, expected, timeout_s=90)
        assert got == expected, (got, expected, second.output()[-3000:])
        assert dead_letters(kafka_settings, topics["dead_letter"]) == {}
    finally:
        second.stop()
    records = read_to_end(kafka_settings, changelog)
    assert any(m.key() == PART_KEY for m in records)
    assert max(len(m.value() or b"") for m in records) <= DEFAULT_PART_BYTES
