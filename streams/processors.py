"""The extension point of the worker: partition processors that ride its exactly-once state.

A `PartitionProcessor` sees every ACCEPTED event of one input partition (valid, not a
duplicate, not dead-lettered) in offset order, batch by batch, and keeps its state in the
worker's changelog. The quota evaluator is one (see `quotas.py`).

Per partition the worker calls, in this order:
1. `factory(partition)` when the partition is assigned, then `load(state)` once with the
   recovered state (`{}` for a fresh partition): the mapping of key -> JSON value that
   all earlier deltas add up to.
2. `apply(columns, now_ms=...)` once per batch, never for an idle tick. `columns` holds,
   in offset order, one `EventColumns` per input record with accepted events, or one
   `MixedColumns` for a run of single-event records of many tenants (a fetch's single
   CloudEvents, `tenant[i]` per event), holding only those events. It returns
   `(outputs, delta)`: `outputs` are `OutputRecord`s to publish, `delta` maps changed
   keys to their new JSON-safe value (None deletes the key).

Guarantees: the outputs are produced and acknowledged by Kafka BEFORE the delta becomes
durable (changelog record, then local store) together with the batch's input offset.
After a crash, the processor is rebuilt with `load()` from the last durable state and
the batch is replayed, so a processor's outputs must be idempotent or recognisable by key
(they may be published twice); its state is counted exactly once. `apply` must be
deterministic given the state and the events (use the events' time, not the clock, for
anything that changes state) and must not block.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from tokenops.schemas.columns import EventColumns, MixedColumns


@dataclass(frozen=True, slots=True)
class OutputRecord:
    """One record to publish; confluent-kafka places it by `key` (murmur2) unless
    `partition` is given. `timestamp_ms` None: the producer's clock."""

    topic: str
    key: bytes | None
    value: bytes
    headers: list[tuple[str, bytes]] | None = None
    partition: int | None = None
    timestamp_ms: int | None = None


class PartitionProcessor(Protocol):
    name: str  # unique per worker; its state keys live under this name

    def load(self, state: Mapping[str, Any]) -> None: ...

    def apply(
        self, columns: Sequence[EventColumns | MixedColumns], *, now_ms: int
    ) -> tuple[list[OutputRecord], dict[str, Any]]: ...


ProcessorFactory = Callable[[int], PartitionProcessor]
