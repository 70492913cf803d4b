"""Faust's Kafka consumer, handing fetched records to the worker in whole batches.

Faust moves every message through its own per-message machinery: a `ConsumerMessage`,
an `Event`, two asyncio tasks (`wait_first`), the stream queue, an ack and its sensors.
That costs a few hundred microseconds of CPU per record, whatever the record holds:
with small records (a few events each) it was most of the worker's time (measured:
~800 us of CPU per record of 10 events, ~80 us of it in the batch path). The worker
works on whole batches and keeps its own offsets, so none of that is needed.

`BatchConsumer` keeps everything else of Faust's aiokafka consumer (group membership,
rebalances, flow control, seeking to committed offsets) and replaces only its fetch loop
(`_drain_messages`): the usage topic's fetched records are gathered by partition into
batches (`max_records`, `max_bytes` of record values, or `within_s` after the first
record, as the worker's `batch_max_records`, `batch_max_bytes` and `batch_within_s`) and
go straight to `handle`, which returns once the batch is durable. Records fetched before
a rebalance are dropped, as Faust does: it then seeks every assigned partition to its
committed offset, the state's next input offset (`app.py`), so they are fetched again.
Messages are never acked to Faust; instead the partitions' state offsets, which are
durable by construction, are committed every `commit_interval_s` (they matter only for
lag monitoring: a partition resumes from its state, see docs/streams.md).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import faust
from faust.transport.drivers import aiokafka

from tokenops.streams.partition import InputRecord

logger = logging.getLogger(__name__)

BatchHandler = Callable[[dict[int, list[InputRecord]]], Awaitable[None]]
Positions = Callable[[], dict[int, int]]  # partition -> state's next input offset


@dataclass(frozen=True)
class BatchWiring:
    """Where the fetched records go: the usage topic, the worker's batch handler, and the
    partitions' durable positions (committed every `commit_interval_s`)."""

    topic: str
    handle: BatchHandler
    positions: Positions
    max_records: int = 2000  # a batch is handled once it holds this many records,
    max_bytes: int = 8 * 1024 * 1024  # or this many bytes of record values,
    within_s: float = 0.2  # or this long after its first record arrived
    commit_interval_s: float = 2.0


class BatchApp(faust.App):
    """A Faust app whose consumer hands whole fetches to `batches` (when set)."""

    batches: BatchWiring | None = None

    def _new_transport(self) -> Any:
        return BatchTransport(self.conf.broker_consumer, self)


class BatchConsumer(aiokafka.Consumer):
    """The aiokafka consumer of Faust with a batch fetch loop (see the module docstring)."""

    async def _drain_messages(self, fetcher: Any) -> None:  # pragma: no cover (e2e)
        wiring: BatchWiring | None = getattr(self.app, "batches", None)
        if wiring is None:  # not wired: Faust's own per-message loop
            await super()._drain_messages(fetcher)
            return
        topic, handle = wiring.topic, wiring.handle
        consumer_stopped, fetcher_stopped = self._stopped.is_set, fetcher._stopped.is_set
        batch: dict[int, list[InputRecord]] = {}
        size, nbytes, due, batch_generation = 0, 0, 0.0, None
        last_commit = time.monotonic()
        try:
            while not (consumer_stopped() or fetcher_stopped()):
                # an empty batch waits for records; a started one only until it is due
                timeout = max(0.0, due - time.monotonic()) if size else 1.0
                records, active = await self._wait_next_records(timeout)
                generation = self.app.consumer_generation_id
                await self.sleep(0)
                if self.should_stop:
                    break
                if not self.flow_active or generation != batch_generation:
                    # A rebalance: what was fetched before it is dropped; Faust seeks the
                    # partitions to the committed offsets, which are their state offsets.
                    batch, size, nbytes = {}, 0, 0
                    if not self.flow_active:
                        if records is not None:
                            await self._seek_back()  # as Faust's getmany does
                        continue
                if records:
                    added, added_bytes = self._add(batch, topic, records, active)
                    if added and not size:
                        due, batch_generation = time.monotonic() + wiring.within_s, generation
                    size += added
                    nbytes += added_bytes
                if size and (
                    size >= wiring.max_records
                    or nbytes >= wiring.max_bytes
                    or time.monotonic() >= due
                ):
                    ready, batch, size, nbytes = batch, {}, 0, 0
                    await handle(ready)
                if time.monotonic() - last_commit >= wiring.commit_interval_s:
                    last_commit = time.monotonic()
                    if self.flow_active:
                        await self._commit_positions(topic, wiring.positions())
        except self.consumer_stopped_errors:
            if self.transport.app.should_stop:
                logger.info("broker stopped the consumer, shutting down")
                return
            raise
        except asyncio.CancelledError:
            if self.transport.app.should_stop:  # as Faust's loop: a stop ends it quietly
                return
            raise

    def _add(
        self,
        batch: dict[int, list[InputRecord]],
        topic: str,
        records: Any,
        active: set[Any] | None,
    ) -> tuple[int, int]:
        """Add the usage topic's records of the active partitions to `batch`, by
        partition, in offset order; returns how many were added and their values' bytes."""
        added = added_bytes = 0
        buffered = self._buffered_partitions
        for tp, items in records.items():
            if tp.topic != topic:
                continue
            if active is not None and tp not in active and tp not in buffered:
                continue
            part = batch.get(tp.partition)
            if part is None:
                part = batch[tp.partition] = []
            part += [
                InputRecord(r.offset, r.key, r.value, r.headers, r.timestamp, r.timestamp_type)
                for r in items
            ]
            added += len(items)
            added_bytes += sum(len(r.value) for r in items if r.value)
        return added, added_bytes

    async def _seek_back(self) -> None:
        try:
            await self.perform_seek()
        except Exception as exc:
            logger.warning("seek while the flow is suspended failed: %r", exc)

    async def _commit_positions(self, topic: str, positions: dict[int, int]) -> None:
        offsets = {
            tp: positions[tp.partition]
            for tp in self.assignment()
            if tp.topic == topic and positions.get(tp.partition)
        }
        if offsets:
            await self._commit(offsets)


class BatchTransport(aiokafka.Transport):
    Consumer = BatchConsumer
