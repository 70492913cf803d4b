"""Load for the pipeline benchmark: pre-encoded batch records, produced at a set rate.

The producer must not be what limits the pipeline, so events skip the SDK's validation:
each record is what the SDK sends for a batch of one tenant, the v2 columnar batch
(`encode_columns`, key = tenant, its content-type header), or with `wire="v1"` the v1
envelope of CloudEvents (`encode_batch_encoded`), built from pre-encoded pieces. Every
event has a unique id (the worker deduplicates) and the event time it is sent at (or a
fixed past hour, for catch-up runs).
"""

from __future__ import annotations

import itertools
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import orjson
from confluent_kafka import Producer

from tokenops.schemas.codec import BATCH_HEADERS, encode_batch_encoded, to_cloudevent
from tokenops.schemas.column_batch import format_ms
from tokenops.schemas.event import UsageEvent
from tokenops.schemas.wire import BATCH_TYPE, COLUMNS_HEADERS, COLUMNS_VERSION
from tokenops.settings import KafkaSettings

MODELS = ("gpt-x", "claude-y", "llama-z")


def cloudevent(tenant: str, model: str, event_id: str, t_ms: int, tokens: int) -> dict[str, Any]:
    """The CloudEvent `encode_event` writes for one event of `tokens` tokens (4/5 input)."""
    return to_cloudevent(
        UsageEvent(
            id=event_id,
            source="//node/bench",
            time=datetime.fromtimestamp(t_ms / 1000, UTC),
            tenant_id=tenant,
            model=model,
            provider="acme-ai",
            input_tokens=tokens * 4 // 5,
            output_tokens=tokens - tokens * 4 // 5,
            cache_read_input_tokens=tokens // 5,
            reasoning_output_tokens=tokens // 20,
        )
    )


def _data(tenant: str, model: str) -> bytes:
    return orjson.dumps(cloudevent(tenant, model, "x", int(time.time() * 1000), 1500)["data"])


def iso_ms(t_ms: int) -> bytes:
    return (
        datetime.fromtimestamp(t_ms / 1000, UTC).isoformat(timespec="milliseconds")[:-6] + "Z"
    ).encode()


class BatchLoad:
    """Produces batch records of `per_record` events of one tenant, round robin over
    `tenants` tenants and over the models."""

    def __init__(
        self,
        kafka: KafkaSettings,
        topic: str,
        tenants: int,
        per_record: int = 100,
        wire: str = "v2",
    ) -> None:
        self.topic, self.per_record = topic, per_record
        self.record = self.columns_record if wire == "v2" else self.cloudevents_record
        self.headers = COLUMNS_HEADERS if wire == "v2" else BATCH_HEADERS
        self.producer = Producer(
            {
                **kafka.librdkafka(),
                "partitioner": "murmur2_random",
                "linger.ms": 10,
                "compression.type": "lz4",
                "queue.buffering.max.kbytes": 512_000,
            }
        )
        self.names = [f"tenant-{i:06d}" for i in range(tenants)]
        self.tenants = itertools.cycle(range(tenants))
        self.prefix = uuid.uuid4().hex[:8].encode()
        self.sent = 0

    def columns_record(self, tenant: int, t_ms: int) -> bytes:
        """The v2 batch `encode_columns` writes for these events (what the SDK sends)."""
        name, n = self.names[tenant], self.per_record
        data = orjson.loads(_data(name, MODELS[tenant % len(MODELS)]))
        prefix = self.prefix.decode()
        columns: dict[str, Any] = {
            "id": [f"{prefix}-{self.sent + i}" for i in range(n)],
            "source": ["//node/bench"] * n,
            "time": [format_ms(t_ms)] * n,
            "model": [data["model"]] * n,
            "provider": [data["provider"]] * n,
        }
        for key in (
            "input_tokens",
            "output_tokens",
            "cache_read_input_tokens",
            "reasoning_output_tokens",
        ):
            columns[key] = [data[key]] * n
        envelope = {"type": BATCH_TYPE, "version": COLUMNS_VERSION, "tenant_id": name}
        return orjson.dumps({**envelope, "schema_version": 1, "columns": columns})

    def cloudevents_record(self, tenant: int, t_ms: int) -> bytes:
        """The v1 batch `encode_batch_encoded` writes for these events."""
        name = self.names[tenant]
        data = _data(name, MODELS[tenant % len(MODELS)])
        head = b'{"specversion":"1.0","type":"ai.tokenops.usage","source":"//node/bench","id":"'
        tail = b'","time":"' + iso_ms(t_ms) + b'","data":' + data + b"}"
        base = self.sent
        events = [
            b"".join((head, self.prefix, b"-", str(base + i).encode(), tail))
            for i in range(self.per_record)
        ]
        return encode_batch_encoded(name, events)

    def send(self, records: int, t_ms: int | None = None) -> None:
        for _ in range(records):
            tenant = next(self.tenants)
            value = self.record(tenant, int(time.time() * 1000) if t_ms is None else t_ms)
            key = self.names[tenant].encode()
            while True:
                try:
                    self.producer.produce(self.topic, value, key, headers=self.headers)
                    break
                except BufferError:
                    self.producer.poll(0.05)
            self.sent += self.per_record
            self.producer.poll(0)

    def fill(self, events: int, t_ms: int) -> None:
        """`events` events (rounded up to whole records), all at event time `t_ms`."""
        self.send(-(-events // self.per_record), t_ms)
        self.flush()

    def paced(self, rate: float, seconds: float) -> float:
        """Send at `rate` events/s for `seconds` with live event times; returns the rate
        actually offered (lower when this process cannot keep up)."""
        start, sent0 = time.perf_counter(), self.sent
        per_tick = max(1, round(rate * 0.01 / self.per_record))  # a tick every ~10 ms
        while (now := time.perf_counter() - start) < seconds:
            behind = rate * now - (self.sent - sent0)
            if behind >= per_tick * self.per_record:
                self.send(per_tick)
            else:
                time.sleep(0.002)
        return (self.sent - sent0) / (time.perf_counter() - start)

    def flush(self) -> None:
        while self.producer.flush(30) > 0:
            pass
