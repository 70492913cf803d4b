"""Raw events and window totals agree: a real worker and a real ClickHouse sink.

A too-late event (older than the dedup horizon) and an event signed with a key the
worker's keyring retired are dead-lettered by the worker. The sink runs with the old
keyring (a rotation that reached the worker first): before, it judged signatures and
clocks itself and stored both, so `reconcile` flagged the tenant (777 vs 0). Now the
sink stores the worker's dead letters, the billing view leaves both out, and reconcile
is clean once the sink has consumed the dead-letter topic. Single CloudEvents a plain
producer wrote outside the tenant's home partition reach it in a worker's bundle: stored
once each, a resend billed once, and the too-late one left out alone.
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from confluent_kafka import Producer

from tests.e2e.test_clickhouse_pipeline import SinkProcess, cli, topics  # noqa: F401
from tests.e2e.worker_run import WorkerProcess, clickhouse_sink_env, latest_totals, worker_env
from tokenops.demo.observe import pipeline_lag
from tokenops.placement import home_partition
from tokenops.producers import ProducerSettings, UsageProducer
from tokenops.schemas.event import UsageEvent
from tokenops.schemas.wire import EVENT_HEADERS, encode_event
from tokenops.settings import KafkaSettings
from tokenops.sinks.clickhouse import ClickHouseSettings, open_store
from tokenops.topics import read_to_end

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

RETIRED = ("node-a-2026-10", "a-retired-secret-4f1d9c2b7e")
CURRENT = ("node-a-2026-11", "a-current-secret-8e3a6d1f0c")


def _send(
    kafka: KafkaSettings,
    topic: str,
    tmp: Path,
    n: int,
    when: datetime,
    key: tuple[str, str],
    tokens: int,
) -> None:
    """`n` events of tenant acme signed with `key`, through the SDK producer."""
    events = [
        {
            "id": f"{key[0]}-{tokens}-{i}",
            "source": "//node-a",
            "time": when,
            "tenant_id": "acme",
            "model": "m1",
            "provider": "p",
            "input_tokens": tokens,
            "output_tokens": 1,
        }
        for i in range(n)
    ]
    settings = ProducerSettings(
        topic=topic,
        spool_dir=tmp / f"spool-{uuid.uuid4().hex[:6]}",
        signing_key_id=key[0],
        signing_key=key[1],
    )  # type: ignore[arg-type]
    with UsageProducer(kafka, settings) as producer:
        producer.send_many(events)
        assert producer.flush(30) == 0


def _plain(now: datetime, n: int, *, late: bool = False) -> UsageEvent:
    return UsageEvent(
        id=f"plain-{n}",
        source="//gateway",
        time=now - timedelta(hours=1) if late else now,
        tenant_id="acme",
        model="m1",
        provider="p",
        input_tokens=333 if late else 20,
        output_tokens=1,
    )


def test_dead_lettered_events_stay_out_of_raw_billing_and_reconcile_is_clean(
    kafka_settings: KafkaSettings,
    topics: dict[str, str],  # noqa: F811
    tmp_path: Path,
) -> None:
    for name, key in (("worker", CURRENT), ("sink", RETIRED)):
        keyring = tmp_path / f"{name}-keyring.yaml"
        keyring.write_text(f'{key[0]}: {{secret: "{key[1]}", sources: ["*"]}}\n')
        keyring.chmod(0o600)  # a keyring open to others is refused
    env = worker_env(kafka_settings, topics, f"verdicts-{uuid.uuid4().hex[:8]}", tmp_path)
    env.update(TOKENOPS_WORKER_SIGNATURE_MODE="verify-if-present")
    group = f"sink-{uuid.uuid4().hex[:8]}"
    store = tmp_path / "store"
    keyring = {"TOKENOPS_WORKER_SIGNING_KEYRING_FILE": str(tmp_path / "sink-keyring.yaml")}
    sink_env = clickhouse_sink_env(env, tmp_path, store, group, **keyring)
    env["TOKENOPS_WORKER_SIGNING_KEYRING_FILE"] = str(tmp_path / "worker-keyring.yaml")
    worker = WorkerProcess(env, tmp_path / "state", tmp_path / "worker.log")
    sink = SinkProcess(sink_env, tmp_path / "sink.log")
    usage = topics["usage"]
    try:
        worker.wait_ready()
        sink.wait_ready()
        now = datetime.now(UTC)
        _send(kafka_settings, usage, tmp_path, 3, now, CURRENT, 10)  # counted
        deadline = time.monotonic() + 60
        while worker.metric('tokenops_worker_events_total{outcome="counted"}') < 3:
            assert time.monotonic() < deadline, worker.output()[-3000:]
            time.sleep(0.3)
        # older than the 120 s dedup horizon behind the watermark: dead letter `too_late`
        _send(kafka_settings, usage, tmp_path, 1, now - timedelta(hours=1), CURRENT, 777)
        # signed with the key the worker's keyring retired: dead letter `signature`
        _send(kafka_settings, usage, tmp_path, 1, now, RETIRED, 555)
        # single CloudEvents a plain producer wrote away from acme's home: forwarded there
        # in a bundle; one resent, one too late (dead-lettered alone, the rest stored)
        away = (home_partition("acme", 4) + 1) % 4
        plain = Producer(kafka_settings.librdkafka())
        for e in (_plain(now, 1), _plain(now, 2), _plain(now, 1), _plain(now, 3, late=True)):
            plain.produce(usage, encode_event(e), b"acme", away, headers=EVENT_HEADERS)
        assert plain.flush(10) == 0

        while len(read_to_end(kafka_settings, topics["dead_letter"])) < 3:
            assert time.monotonic() < deadline, worker.output()[-3000:]
            time.sleep(0.3)
        while sum(t[-1] for t in latest_totals(kafka_settings, topics["aggregates"]).values()) < 5:
            assert time.monotonic() < deadline, worker.output()[-3000:]
            time.sleep(0.3)
        # the sink has every window, raw event AND dead letter before reconcile runs
        inputs = [topics["aggregates"], usage, topics["dead_letter"]]
        while pipeline_lag(kafka_settings, group, inputs) != 0:
            assert time.monotonic() < deadline, sink.output()[-3000:]
            time.sleep(0.3)
        span = [(now - timedelta(hours=2)).isoformat(), (now + timedelta(hours=1)).isoformat()]
        check = cli(sink_env, "reconcile", "--from", span[0], "--to", span[1])
        assert check.returncode == 0, check.stdout + check.stderr
        assert "clean" in check.stdout
        worker_bundles = worker.metric("tokenops_worker_forward_bundles_total")
    finally:
        sink.stop()
        worker.stop()
    with open_store(ClickHouseSettings(url=f"chdb://{store}", http_port=0), tmp_path) as opened:
        billed = opened.client.query("SELECT sum(input_tokens), count() FROM raw_events_latest")
        assert billed.result_rows == [(30 + 2 * 20, 3 + 2)]
        rejected = opened.client.query(
            "SELECT input_tokens, field, key_id FROM raw_events_rejected ORDER BY input_tokens"
        ).result_rows
        assert rejected == [
            (333, "time", ""),  # the late one of the bundle, alone
            (555, "signature", RETIRED[0]),
            (777, "time", CURRENT[0]),
        ]
        assert worker_bundles >= 1
