"""Per-tenant batching: events wait briefly so many of one tenant share one Kafka record."""

from __future__ import annotations

import time
from collections.abc import Callable

from tokenops.schemas import (
    BATCH_CONTENT_TYPE,
    CLOUDEVENTS_CONTENT_TYPE,
    UsageEvent,
    encode_batch,
    encode_event,
)

# Below Kafka's default message.max.bytes (1,000,000) with room for key and headers.
MAX_PRODUCED_BYTES = 900_000


class TenantBatches:
    """Buffers of events per tenant; not thread-safe (the producer holds its lock).

    `add` returns the buffer that just became full; `stale` the ones older than the
    linger. A tenant's events leave in the order they came, so they stay ordered.
    """

    def __init__(
        self, max_events: int, linger_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.max_events = max_events
        self.linger_s = linger_s
        self.clock = clock
        self.buffered = 0
        self._buffers: dict[str, list[UsageEvent]] = {}
        self._since: dict[str, float] = {}

    def add(self, event: UsageEvent) -> list[UsageEvent] | None:
        tenant = event.tenant_id
        buffer = self._buffers.get(tenant)
        if buffer is None:
            buffer = self._buffers[tenant] = []
            self._since[tenant] = self.clock()
        buffer.append(event)
        self.buffered += 1
        if len(buffer) >= self.max_events:
            return self._take(tenant)
        return None

    def stale(self) -> list[list[UsageEvent]]:
        horizon = self.clock() - self.linger_s
        return [self._take(t) for t, since in list(self._since.items()) if since <= horizon]

    def drain(self) -> list[list[UsageEvent]]:
        return [self._take(tenant) for tenant in list(self._buffers)]

    def _take(self, tenant: str) -> list[UsageEvent]:
        del self._since[tenant]
        buffer = self._buffers.pop(tenant)
        self.buffered -= len(buffer)
        return buffer


def encode_records(events: list[UsageEvent], batched: bool) -> list[tuple[str, bytes, int]]:
    """(content type, value, event count) records for events of one tenant.

    A batch too large for one record is split in halves until every part fits.
    """
    if not batched or len(events) == 1:  # a lone event goes as a plain CloudEvent
        return [(CLOUDEVENTS_CONTENT_TYPE, encode_event(e), 1) for e in events]
    value = encode_batch(events)
    if len(value) <= MAX_PRODUCED_BYTES or len(events) == 1:
        return [(BATCH_CONTENT_TYPE, value, len(events))]
    middle = len(events) // 2
    return encode_records(events[:middle], True) + encode_records(events[middle:], True)
