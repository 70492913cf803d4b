"""The broker stops under a running `tokenops api`: ingest answers 503 with Retry-After
(not durable in time, then queue full), and after the broker is back, clients that retry
as told lose nothing (a retried id may be stored twice; the worker counts it once)."""

from __future__ import annotations

import time
from typing import Any

import orjson
import pytest

from tests.api_server import start_api
from tests.e2e.test_api_ingest import cloudevent
from tokenops.schemas import decode_record
from tokenops.settings import KafkaSettings
from tokenops.stack.kafka import KafkaBroker
from tokenops.topics import read_to_end

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]
BATCH = {"Content-Type": "application/cloudevents-batch+json"}


def test_broker_outage_gives_503_then_recovery_loses_nothing(
    kafka_broker: KafkaBroker,
    kafka_settings: KafkaSettings,
    new_topic: Any,
    tmp_path: Any,
) -> None:
    topic = new_topic("api-outage")
    env = {
        "TOKENOPS_API_DURABLE_TIMEOUT_S": "2",
        "TOKENOPS_API_RETRY_AFTER_S": "1",
        "TOKENOPS_PRODUCER_MAX_OUTSTANDING_EVENTS": "15",
        "TOKENOPS_PRODUCER_DELIVERY_TIMEOUT_MS": "120000",
    }
    api = start_api(kafka_settings, topic, tmp_path, ["acme"], env)
    batches = [[cloudevent(input_tokens=b * 100 + i) for i in range(10)] for b in range(4)]

    def post(batch: list[dict[str, Any]]) -> tuple[int, dict[str, str]]:
        status, headers, _ = api.request("POST", "/v1/events", orjson.dumps(batch), headers=BATCH)
        return status, headers

    try:
        assert post(batches[0])[0] == 200
        kafka_broker.stop()
        try:
            status, headers = post(batches[1])  # taken, but not acknowledged in time
            assert (status, headers["retry-after"]) == (503, "1")
            status, headers = post(batches[2])  # 10 outstanding + 10 > 15: queue full
            assert (status, headers["retry-after"]) == (503, "1")
        finally:
            kafka_broker.start()
        for batch in batches[1:]:  # a client retrying as told, same ids
            deadline = time.monotonic() + 90
            while (answer := post(batch))[0] != 200:
                assert answer[0] == 503 and time.monotonic() < deadline
                time.sleep(int(answer[1]["retry-after"]))
        metrics = api.request("GET", "/metrics")[2].decode()
        assert 'tokenops_api_unavailable_total{reason="not_durable"}' in metrics
        assert 'tokenops_api_unavailable_total{reason="queue_full"}' in metrics
    finally:
        api.process.stop()
    stored: dict[str, int] = {}
    for message in read_to_end(kafka_settings, topic):
        for event in decode_record(message.value(), message.headers()):
            stored[event.id] = event.input_tokens
    assert stored == {e["id"]: e["data"]["input_tokens"] for b in batches for e in b}
