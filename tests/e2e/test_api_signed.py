"""Node signing through the HTTP API: `tokenops api serve` with a node key
(`TOKENOPS_PRODUCER_SIGNING_KEY_*`) signs what it produces, as an SDK producer does, and
a worker in enforce mode counts those events. An event whose `source` the API's node
key is not scoped to is signed too, and dead-lettered `signature_scope`: an API key
does not let a client write as another node."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.api_server import start_api
from tests.e2e.test_api_ingest import cloudevent
from tests.e2e.worker_run import WorkerProcess, latest_totals, worker_env
from tests.unit.test_signing import write_keyring
from tokenops.deadletters import DLQ_FIELD
from tokenops.settings import KafkaSettings
from tokenops.topics import read_to_end

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

KEY_ID, SECRET = "api-node-2026-12", "api-node-secret-6b2e9f4a1d"


def test_events_signed_by_the_apis_node_key_are_counted_in_enforce_mode(
    kafka_settings: KafkaSettings, new_topic: Callable[..., str], tmp_path: Path
) -> None:
    topics = {
        "usage": new_topic("usage", partitions=2),
        "aggregates": new_topic("aggs", partitions=2),
        "dead_letter": new_topic("dlq", partitions=2),
        "quota_alerts": new_topic("alerts", partitions=2),
        "quotas": new_topic("quotas", partitions=1),
    }
    keyring = {KEY_ID: {"secret": SECRET, "sources": ["//api-gateway/*"]}}
    env = worker_env(kafka_settings, topics, f"api-signed-{uuid.uuid4().hex[:8]}", tmp_path)
    env.update(
        TOKENOPS_WORKER_SIGNATURE_MODE="enforce",
        TOKENOPS_WORKER_SIGNING_KEYRING_FILE=str(write_keyring(tmp_path / "keyring.yaml", keyring)),
    )
    worker = WorkerProcess(env, tmp_path / "state", tmp_path / "worker.log")
    signing = {"TOKENOPS_PRODUCER_SIGNING_KEY_ID": KEY_ID, "TOKENOPS_PRODUCER_SIGNING_KEY": SECRET}
    api = start_api(kafka_settings, topics["usage"], tmp_path / "api", ["acme"], signing)
    try:
        worker.wait_ready()
        batch = [{**cloudevent(input_tokens=100 + i), "source": "//api-gateway/eu-1"}
                 for i in range(5)]  # fmt: skip
        kind = "application/cloudevents-batch+json"
        assert api.post_json("/v1/events", batch, kind, key="acme") == (
            200, {"accepted": 5, "durable": True},
        )  # fmt: skip
        # a source outside the node key's scope: accepted by the API, signed, refused
        foreign = [{**cloudevent(input_tokens=7_000), "source": "//node-b"}]
        assert api.post_json("/v1/events", foreign, kind, key="acme")[0] == 200

        deadline, counted, letters = time.monotonic() + 60, 0, []
        while time.monotonic() < deadline:
            totals = latest_totals(kafka_settings, topics["aggregates"])
            counted = sum(t[-1] for t in totals.values())
            letters = read_to_end(kafka_settings, topics["dead_letter"])
            if counted >= 5 and letters:
                break
            time.sleep(1)
        assert counted == 5, worker.log.read_text()[-3000:]
        assert sum(t[0] for t in totals.values()) == sum(100 + i for i in range(5))
        assert [dict(m.headers())[DLQ_FIELD] for m in letters] == [b"signature_scope"]
        assert b"//node-b" in letters[0].value()  # the record as produced, columnar
    finally:
        api.process.stop()
        worker.stop()
