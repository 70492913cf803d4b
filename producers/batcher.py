"""Per-tenant batching: encoded events wait briefly so many of one tenant share a record."""

from __future__ import annotations

import time
from collections.abc import Callable

from tokenops.schemas import BATCH_CONTENT_TYPE, CLOUDEVENTS_CONTENT_TYPE
from tokenops.schemas.codec import encode_batch_encoded

# Below Kafka's default message.max.bytes (1,000,000) with room for key and headers.
MAX_PRODUCED_BYTES = 900_000
_ENVELOPE_BYTES = 200 + 128  # the batch envelope around the events, tenant id included

Batch = tuple[str, list[bytes]]


class TenantBatches:
    """Encoded events per tenant; not thread-safe (the producer holds its lock).

    `add` returns a batch when one is complete (full by count, or by bytes before the
    new event); `stale` returns those older than the linger. A tenant's events leave in
    the order they came, so they stay ordered in its partition.
    """

    def __init__(
        self, max_events: int, linger_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.max_events = max_events
        self.linger_s = linger_s
        self.clock = clock
        self.buffered = 0
        self._buffers: dict[str, list[bytes]] = {}
        self._bytes: dict[str, int] = {}
        self._since: dict[str, float] = {}

    def add(self, tenant: str, encoded: bytes) -> Batch | None:
        buffer = self._buffers.get(tenant)
        done = None
        if buffer is not None and self._bytes[tenant] + len(encoded) > MAX_PRODUCED_BYTES:
            done = self._take(tenant)
            buffer = None
        if buffer is None:
            buffer = self._buffers[tenant] = []
            self._bytes[tenant] = _ENVELOPE_BYTES
            self._since[tenant] = self.clock()
        buffer.append(encoded)
        self._bytes[tenant] += len(encoded) + 1
        self.buffered += 1
        if done is None and len(buffer) >= self.max_events:
            done = self._take(tenant)
        return done

    def stale(self) -> list[Batch]:
        horizon = self.clock() - self.linger_s
        return [self._take(t) for t, since in list(self._since.items()) if since <= horizon]

    def drain(self) -> list[Batch]:
        return [self._take(tenant) for tenant in list(self._buffers)]

    def _take(self, tenant: str) -> Batch:
        del self._since[tenant], self._bytes[tenant]
        buffer = self._buffers.pop(tenant)
        self.buffered -= len(buffer)
        return tenant, buffer


def batch_record(tenant: str, encoded: list[bytes]) -> tuple[str, bytes]:
    """(content type, value) of one record; a lone event goes as a plain CloudEvent."""
    if len(encoded) == 1:
        return CLOUDEVENTS_CONTENT_TYPE, encoded[0]
    return BATCH_CONTENT_TYPE, encode_batch_encoded(tenant, encoded)
