"""Signed usage events through a real `tokenops worker` in enforce mode.

Two nodes sign with two live key ids (a rotation in progress); a third node does not
sign, a fourth signs with a secret the keyring does not hold, and one signed batch is
replayed with an edited token count. Only the genuinely signed events are counted; every
other record is dead-lettered with its reason.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest
from confluent_kafka import Producer

from tests.e2e.worker_run import WorkerProcess, latest_totals, worker_env
from tokenops.producers import ProducerSettings, UsageProducer
from tokenops.schemas import BATCH_HEADERS, UsageEvent, encode_batch
from tokenops.schemas.signing import SIGNATURE_HEADER, signature_header
from tokenops.settings import KafkaSettings
from tokenops.streams.deadletter import DLQ_FIELD, DLQ_REASON
from tokenops.topics import read_to_end

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

KEYS = {"node-a-2026-10": "a-old-secret-4f1d9c2b7e", "node-a-2026-11": "a-new-secret-8e3a6d1f0c"}


@pytest.fixture
def topics(new_topic: Callable[..., str]) -> dict[str, str]:
    return {
        "usage": new_topic("usage", partitions=2),
        "aggregates": new_topic("aggs", partitions=2),
        "dead_letter": new_topic("dlq", partitions=2),
        "quota_alerts": new_topic("alerts", partitions=2),
        "quotas": new_topic("quotas", partitions=1),
    }


def _events(node: str, n: int, start_ms: int) -> list[dict[str, object]]:
    return [
        {
            "id": f"{node}-{i}",
            "source": f"//{node}",
            "time": datetime.fromtimestamp((start_ms + i) / 1000, UTC),
            "tenant_id": "acme",
            "model": "m1",
            "provider": "p",
            "input_tokens": 10,
            "output_tokens": 1,
        }
        for i in range(n)
    ]


def _send(
    kafka: KafkaSettings, topic: str, tmp: Path, events: list[dict[str, object]], **signing: str
) -> None:
    settings = ProducerSettings(
        topic=topic, spool_dir=tmp / f"spool-{uuid.uuid4().hex[:6]}", batch_max_events=20, **signing
    )  # type: ignore[arg-type]
    with UsageProducer(kafka, settings) as producer:
        producer.send_many(events)
        assert producer.flush(30) == 0


def test_enforce_counts_signed_events_and_dead_letters_the_rest(
    kafka_settings: KafkaSettings, topics: dict[str, str], tmp_path: Path
) -> None:
    keyring = tmp_path / "keyring.yaml"
    keyring.write_text("".join(f"{kid}: {secret}\n" for kid, secret in KEYS.items()))
    env = worker_env(kafka_settings, topics, f"signed-{uuid.uuid4().hex[:8]}", tmp_path)
    env.update(
        TOKENOPS_WORKER_SIGNATURE_MODE="enforce",
        TOKENOPS_WORKER_SIGNING_KEYRING_FILE=str(keyring),
    )
    worker = WorkerProcess(env, tmp_path / "state", tmp_path / "worker.log")
    try:
        worker.wait_ready()
        now = int(time.time() * 1000) - 10_000
        old, new = KEYS.items()
        usage = topics["usage"]
        # 40 events in 2 records per signing node: counted
        _send(kafka_settings, usage, tmp_path, _events("node-a", 40, now),
              signing_key_id=old[0], signing_key=old[1])  # fmt: skip
        _send(kafka_settings, usage, tmp_path, _events("node-b", 40, now),
              signing_key_id=new[0], signing_key=new[1])  # fmt: skip
        # 2 unsigned records, 2 forged ones: dead-lettered
        _send(kafka_settings, usage, tmp_path, _events("node-c", 40, now))
        _send(kafka_settings, usage, tmp_path, _events("node-d", 40, now),
              signing_key_id=new[0], signing_key="not-the-real-secret-123")  # fmt: skip
        # a genuinely signed batch, replayed with one token count raised: dead-lettered
        batch = [UsageEvent(**e) for e in _events("node-e", 5, now)]  # type: ignore[arg-type]
        signature = signature_header(old[0], old[1].encode(), batch)
        body = orjson.loads(encode_batch(batch))
        body["events"][3]["data"]["input_tokens"] = 10_000
        raw = Producer({**kafka_settings.librdkafka(), "partitioner": "murmur2_random"})
        raw.produce(usage, orjson.dumps(body), b"acme",
                    headers=[*BATCH_HEADERS, (SIGNATURE_HEADER, signature)])  # fmt: skip
        assert raw.flush(30) == 0

        deadline = time.monotonic() + 90
        counted = 0
        while time.monotonic() < deadline:
            totals = latest_totals(kafka_settings, topics["aggregates"])
            counted = sum(t[-1] for t in totals.values())
            letters = read_to_end(kafka_settings, topics["dead_letter"])
            if counted >= 80 and len(letters) >= 5:
                break
            time.sleep(1)
        assert counted == 80, worker.log.read_text()[-3000:]
        assert sum(t[0] for t in totals.values()) == 80 * 10  # the edited count never landed
        texts = [dict(m.headers())[DLQ_REASON].decode() for m in letters]
        reasons = sorted(k for t in texts for k in ("forged", "unsigned") if f": {k}: " in t)
        assert len(letters) == 5
        assert all(dict(m.headers())[DLQ_FIELD] == b"signature" for m in letters)
        assert reasons == ["forged", "forged", "forged", "unsigned", "unsigned"], reasons
        assert worker.proc.poll() is None  # it kept running
    finally:
        worker.stop()
