"""Load for the pipeline benchmark: pre-encoded records, produced at a set rate.

The producer must not be what limits the pipeline, so events skip the SDK's validation:
each record is what the SDK sends for a batch of one tenant, the v2 columnar batch
(`encode_columns`, key = tenant, its content-type header), or with `wire="v1"` the v1
envelope of CloudEvents (`encode_batch_encoded`), built from pre-encoded pieces, or with
`wire="event"` one CloudEvent per record (structured mode, what a foreign producer such
as kcat or a Java or Go gateway writes). Every event has a unique id (the worker
deduplicates) and the event time it is sent at (or a fixed past time, for catch-up runs).
Records are produced with idempotence on, so a retried first batch is never reordered.
"""

from __future__ import annotations

import functools
import itertools
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import orjson
from confluent_kafka import Producer

from tokenops.schemas.event import UsageEvent
from tokenops.schemas.wire import (
    BATCH_HEADERS,
    BATCH_TYPE,
    COLUMNS_HEADERS,
    COLUMNS_VERSION,
    EVENT_HEADERS,
    encode_batch_encoded,
    format_ms,
    to_cloudevent,
)
from tokenops.settings import KafkaSettings
from tokenops.simulate.ledger import Ledger

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


@functools.cache
def _data(tenant: str, model: str) -> bytes:
    return orjson.dumps(cloudevent(tenant, model, "x", int(time.time() * 1000), 1500)["data"])


def iso_ms(t_ms: int) -> bytes:
    return (
        datetime.fromtimestamp(t_ms / 1000, UTC).isoformat(timespec="milliseconds")[:-6] + "Z"
    ).encode()


class BatchLoad:
    """Produces records of `per_record` events of one tenant, round robin over `tenants`
    tenants and over the models. `partitioner` None is librdkafka's default
    (consistent_random: CRC32 of the key, not the tenant's home partition); a `ledger`
    counts every event sent, for a baseline's totals to be checked against."""

    def __init__(
        self,
        kafka: KafkaSettings,
        topic: str,
        tenants: int,
        per_record: int = 100,
        wire: str = "v2",
        partitioner: str | None = "murmur2_random",
        ledger: Ledger | None = None,
    ) -> None:
        self.topic, self.per_record, self.ledger = topic, per_record, ledger
        wires = {
            "v2": (self.columns_record, COLUMNS_HEADERS),
            "v1": (self.cloudevents_record, BATCH_HEADERS),
            "event": (self.event_record, EVENT_HEADERS),
        }
        self.record, self.headers = wires[wire]
        if wire == "event" and per_record != 1:
            raise ValueError("wire='event' holds one event per record")
        if ledger is not None and wire == "v2":
            raise ValueError("the ledger counts CloudEvent loads (wire 'v1' or 'event')")
        config = {
            **kafka.librdkafka(),
            "enable.idempotence": True,
            "linger.ms": 10,
            "compression.type": "lz4",
            "queue.buffering.max.kbytes": 512_000,
        }
        if partitioner is not None:
            config["partitioner"] = partitioner
        self.producer = Producer(config)
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
        return encode_batch_encoded(self.names[tenant], self._cloudevents(tenant, t_ms))

    def event_record(self, tenant: int, t_ms: int) -> bytes:
        """One CloudEvent, the record `encode_event` writes."""
        return self._cloudevents(tenant, t_ms)[0]

    def _cloudevents(self, tenant: int, t_ms: int) -> list[bytes]:
        name, model = self.names[tenant], MODELS[tenant % len(MODELS)]
        data = _data(name, model)
        head = b'{"specversion":"1.0","type":"ai.tokenops.usage","source":"//node/bench","id":"'
        tail = b'","time":"' + iso_ms(t_ms) + b'","data":' + data + b"}"
        base = self.sent
        if self.ledger is not None:
            fields = {**orjson.loads(data), "time": datetime.fromtimestamp(t_ms / 1000, UTC)}
            for _ in range(self.per_record):
                self.ledger.count_fields(fields)
        return [
            b"".join((head, self.prefix, b"-", str(base + i).encode(), tail))
            for i in range(self.per_record)
        ]

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
