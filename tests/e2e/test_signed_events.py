"""Signed usage events through a real `tokenops worker` in enforce mode.

Node A signs with two live key ids (a rotation in progress) and node B with its own;
each key is scoped to its node. A's key signs B's next id first (1 token) and names B's
node_id: both are dead-lettered `signature_scope`, and B's real 9,000-token event with
that id is counted. A third node does not sign, a fourth signs with a secret the keyring
does not hold, a record is signed with A's retired key, and one signed batch is replayed
with an edited token count: each is dead-lettered with its reason, the worker keeps
running, and only genuine, in-scope events are counted.
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
from tests.unit.test_signing import write_keyring
from tokenops.deadletters import DLQ_FIELD, DLQ_REASON
from tokenops.producers import ProducerSettings, UsageProducer
from tokenops.schemas import BATCH_HEADERS, UsageEvent, encode_batch
from tokenops.schemas.signing import SIGNATURE_HEADER, signature_header
from tokenops.settings import KafkaSettings
from tokenops.topics import read_to_end

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

# node A is mid-rotation (two live key ids); node B has one key; A's retired key is gone
A_OLD, A_NEW, B_KEY = "node-a-2026-10", "node-a-2026-11", "node-b-2026-11"
SECRETS = {
    A_OLD: "a-old-secret-4f1d9c2b7e",
    A_NEW: "a-new-secret-8e3a6d1f0c",
    B_KEY: "b-secret-5c7e2a9d1b3f",
    "node-a-2026-09": "a-retired-secret-0b6d3e",  # removed from the keyring
}
SCOPES = {A_OLD: "node-a", A_NEW: "node-a", B_KEY: "node-b"}


@pytest.fixture
def topics(new_topic: Callable[..., str]) -> dict[str, str]:
    return {
        "usage": new_topic("usage", partitions=2),
        "aggregates": new_topic("aggs", partitions=2),
        "dead_letter": new_topic("dlq", partitions=2),
        "quota_alerts": new_topic("alerts", partitions=2),
        "quotas": new_topic("quotas", partitions=1),
    }


def _events(
    node: str, n: int, start_ms: int, *, source: str | None = None, **extra: object
) -> list[dict[str, object]]:
    return [
        {
            "id": f"{node}-{i}",
            "source": source or f"//{node}",
            "time": datetime.fromtimestamp((start_ms + i) / 1000, UTC),
            "tenant_id": "acme",
            "model": "m1",
            "provider": "p",
            "input_tokens": 10,
            "output_tokens": 1,
            **extra,
        }
        for i in range(n)
    ]


def _signing(key_id: str, secret: str | None = None) -> dict[str, str]:
    return {"signing_key_id": key_id, "signing_key": secret or SECRETS[key_id]}


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
    keyring = {
        kid: {"secret": SECRETS[kid], "sources": [f"//{node}", node]}
        for kid, node in SCOPES.items()
    }
    env = worker_env(kafka_settings, topics, f"signed-{uuid.uuid4().hex[:8]}", tmp_path)
    env.update(
        TOKENOPS_WORKER_SIGNATURE_MODE="enforce",
        TOKENOPS_WORKER_SIGNING_KEYRING_FILE=str(write_keyring(tmp_path / "keyring.yaml", keyring)),
    )
    worker = WorkerProcess(env, tmp_path / "state", tmp_path / "worker.log")
    try:
        worker.wait_ready()
        now = int(time.time() * 1000) - 10_000
        usage = topics["usage"]
        # node A, 40 events (2 records) under each of its live key ids: counted
        _send(kafka_settings, usage, tmp_path, _events("node-a", 40, now), **_signing(A_OLD))
        renewed = _events("node-a-new", 40, now + 40, source="//node-a")
        _send(kafka_settings, usage, tmp_path, renewed, **_signing(A_NEW))
        # A's key signs B's next id for 1 token, then A names B's node_id: both
        # genuine signatures outside A's scope, dead-lettered `signature_scope`
        attack = _events("node-b", 1, now, input_tokens=1)
        _send(kafka_settings, usage, tmp_path, attack, **_signing(A_NEW))
        spoof = _events("node-a-x", 1, now, source="//node-a", node_id="node-b")
        _send(kafka_settings, usage, tmp_path, spoof, **_signing(A_NEW))
        # ... so B's real event with that id is not a duplicate: counted, 9,000 tokens
        real = _events("node-b", 1, now, input_tokens=9_000)
        _send(kafka_settings, usage, tmp_path, real, **_signing(B_KEY))
        # unsigned (2 records), forged (2), signed with A's retired key (1): dead-lettered
        _send(kafka_settings, usage, tmp_path, _events("node-c", 40, now))
        _send(kafka_settings, usage, tmp_path, _events("node-d", 40, now),
              **_signing(B_KEY, "not-the-real-secret-123"))  # fmt: skip
        _send(kafka_settings, usage, tmp_path, _events("node-a-old", 5, now, source="//node-a"),
              **_signing("node-a-2026-09"))  # fmt: skip
        # a genuinely signed batch, replayed with one token count raised: dead-lettered
        batch = [UsageEvent(**e) for e in _events("node-e", 5, now, source="//node-a")]  # type: ignore[arg-type]
        signature = signature_header(A_OLD, SECRETS[A_OLD].encode(), batch)
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
            if counted >= 81 and len(letters) >= 8:
                break
            time.sleep(1)
        assert counted == 81, worker.log.read_text()[-3000:]
        # B's 9,000 tokens counted, the attacker's 1 and the edited 10,000 never
        assert sum(t[0] for t in totals.values()) == 80 * 10 + 9_000
        verdicts = sorted(
            (h[DLQ_FIELD].decode(), h[DLQ_REASON].decode().split(": ")[2].split(":")[0])
            for h in (dict(m.headers()) for m in letters)
        )
        assert verdicts == [
            *[("signature", "forged")] * 3,
            ("signature", "unknown_key"),
            *[("signature", "unsigned")] * 2,
            *[("signature_scope", "out_of_scope")] * 2,
        ], verdicts
        assert worker.proc.poll() is None  # it kept running
    finally:
        worker.stop()
