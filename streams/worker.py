"""The worker's partitions: recovery on assignment, durable batches, idle ticks.

`StreamWorker` owns one `PartitionState` per assigned input partition. Every batch, for
every partition in it: compute outputs and a delta (`PartitionState.process`), publish
the outputs and the delta's changelog record(s) and wait for Kafka's acks, then apply the
delta to the local store. A delta larger than the part bound goes to the changelog as
several `delta-part` records (`delta.py`); the bound is read from the `max.message.bytes`
of the topics the worker writes to when it starts, so no record it writes is refused.
One lock serialises batches, idle ticks and rebalances.
Faust's committed offsets do not decide where a partition resumes: its state's next
offset does (committed to Kafka again on every assignment, and records below it are
skipped), so committed offsets matter only for lag monitoring.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from tokenops.settings import KafkaSettings, TopicSettings
from tokenops.streams.errors import WorkerError
from tokenops.streams.metrics import WorkerMetrics
from tokenops.streams.partition import Decoder, InputRecord, PartitionState
from tokenops.streams.processors import OutputRecord, ProcessorFactory
from tokenops.streams.publisher import BatchPublisher
from tokenops.streams.settings import WorkerSettings
from tokenops.streams.state.changelog import ChangelogRecovery
from tokenops.streams.state.delta import StateDelta, delta_records, part_bytes_below
from tokenops.streams.state.store import PartitionStore
from tokenops.streams.topics import max_message_bytes
from tokenops.streams.windows import NO_TIME

logger = logging.getLogger(__name__)


class StreamWorker:
    def __init__(
        self,
        settings: WorkerSettings,
        kafka: KafkaSettings,
        topics: TopicSettings,
        metrics: WorkerMetrics,
        decode: Decoder,
        processors: Sequence[ProcessorFactory] = (),
    ) -> None:
        self.settings, self.topics, self.metrics = settings, topics, metrics
        self.decode, self.processor_factories = decode, list(processors)
        written = [settings.changelog, topics.aggregates, topics.dead_letter, topics.quota_alerts]
        limit = max_message_bytes(kafka, written)
        self.part_bytes = part_bytes_below(limit)
        logger.info("record limit max_message_bytes=%d part_bytes=%d", limit, self.part_bytes)
        self.publisher = BatchPublisher(
            kafka, client_id=f"{settings.app_id}-out", batch_bytes=self.part_bytes
        )
        self.recovery = ChangelogRecovery(kafka, settings.changelog, self.publisher)
        self.states: dict[int, PartitionState] = {}
        self.last_input: dict[int, float] = {}
        self.lock = asyncio.Lock()
        self._last_batch_end = time.perf_counter()
        self._batches = ThreadPoolExecutor(max_workers=1, thread_name_prefix="worker-batch")
        self._inflight: Future[None] | None = None
        self.ready = threading.Event()  # set once the assigned partitions are recovered

    def _path(self, partition: int) -> Path:
        return self.settings.state_dir / self.settings.app_id / f"{self.topics.usage}-{partition}"

    def _open_store(self, path: Path) -> PartitionStore:
        bucket_ms = min(3_600_000, max(1000, self.settings.horizon_ms // 8))
        return PartitionStore(path, bucket_ms=bucket_ms, window_ms=self.settings.window_ms)

    async def assign(self, partitions: set[int]) -> dict[int, int]:
        """Recover every newly assigned partition; returns {partition: next input offset}."""
        loop = asyncio.get_running_loop()
        async with self.lock:
            new = sorted(partitions - set(self.states))
            # read on every assignment: adding partitions triggers one, and a state
            # built with another count is then refused (`routing.PlacementCheck`)
            count = await loop.run_in_executor(None, self._usage_partitions)
            recovered = await asyncio.gather(
                *(
                    loop.run_in_executor(
                        None, self.recovery.recover, p, self._open_store, self._path(p)
                    )
                    for p in new
                )
            )
            s = self.settings
            for partition, (store, owner) in zip(new, recovered, strict=True):
                self.states[partition] = PartitionState(
                    topic=self.topics.usage,
                    partition=partition,
                    store=store,
                    owner=owner,
                    window_s=s.window_s,
                    lateness_ms=s.lateness_ms,
                    horizon_ms=s.horizon_ms,
                    outputs=(self.topics.aggregates, self.topics.dead_letter),
                    decode=self.decode,
                    processors=[factory(partition) for factory in self.processor_factories],
                    partitions=count,
                )
                self.last_input[partition] = time.monotonic()
            self.metrics.partitions.set(len(self.states))
            return {p: self.states[p].next_offset for p in partitions if p in self.states}

    def _usage_partitions(self) -> int:
        topic = self.topics.usage
        listed = self.publisher.producer.list_topics(topic, timeout=30).topics.get(topic)
        if listed is None or listed.error is not None or not listed.partitions:
            raise WorkerError(f"cannot read the partitions of topic {topic}")
        return len(listed.partitions)

    async def revoke(self, partitions: set[int]) -> None:
        async with self.lock:
            for partition in partitions:
                state = self.states.pop(partition, None)
                if state is not None:
                    state.store.close()
            self.metrics.partitions.set(len(self.states))

    async def handle(self, records: dict[int, list[InputRecord]]) -> None:
        """Make one batch durable; records of partitions we do not own are ignored.

        The work runs on a thread: the event loop stays free for Faust's fetcher, which
        fills the stream buffer with the next batch meanwhile.
        """
        async with self.lock:
            owned = [(self.states[p], batch) for p, batch in records.items() if p in self.states]
            now = time.monotonic()
            for state, _ in owned:
                self.last_input[state.partition] = now
            # a dedicated thread, and a future that outlives a cancelled await: a graceful
            # stop waits for the batch in flight before closing the stores (`close`)
            self._inflight = self._batches.submit(self._durable_batch, owned)
            await asyncio.wrap_future(self._inflight)

    def _durable_batch(self, owned: list[tuple[PartitionState, list[InputRecord]]]) -> None:
        started = time.perf_counter()
        now_ms = int(time.time() * 1000)
        work: list[tuple[PartitionState, StateDelta]] = []
        outputs: list[OutputRecord] = []
        for state, batch in owned:
            out, delta, counts = state.process(batch, now_ms)
            outputs += out
            work.append((state, delta))
            self.metrics.record(counts)
        processed = time.perf_counter()
        self._publish_sync(outputs, work)
        logger.debug(
            "batch records=%d process_s=%.3f publish_s=%.3f since_last_s=%.3f",
            sum(len(batch) for _, batch in owned),
            processed - started,
            time.perf_counter() - processed,
            started - self._last_batch_end,
        )
        self._last_batch_end = time.perf_counter()

    async def idle_tick(self) -> None:
        """Close the windows of partitions without input for `idle_timeout_s`."""
        async with self.lock:
            now = time.monotonic()
            now_ms = int(time.time() * 1000)
            work: list[tuple[PartitionState, StateDelta]] = []
            outputs: list[OutputRecord] = []
            for partition, state in self.states.items():
                if now - self.last_input.get(partition, now) < self.settings.idle_timeout_s:
                    continue
                result = state.idle_tick(now_ms, now_ms - self.settings.lateness_ms)
                if result is not None:
                    outputs += result[0]
                    work.append((state, result[1]))
                    self.metrics.windows_closed.inc(len(result[1].unopened))
            if work:
                await self._publish(outputs, work)
            self._gauges(now_ms)

    async def _publish(
        self, outputs: list[OutputRecord], work: list[tuple[PartitionState, StateDelta]]
    ) -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, self._publish_sync, outputs, work)

    def _publish_sync(
        self, outputs: list[OutputRecord], work: list[tuple[PartitionState, StateDelta]]
    ) -> None:
        changelog = self.settings.changelog
        records: list[tuple[str, int, bytes, bytes]] = []
        lasts: list[int] = []
        for state, delta in work:
            for key, value in delta_records(delta, self.part_bytes):
                records.append((changelog, state.partition, key, value))
            lasts.append(len(records) - 1)  # the delta is durable with its last record
        offsets = self.publisher.publish(outputs, records)
        for (state, delta), last in zip(work, lasts, strict=True):
            state.commit(delta, offsets[last] + 1)
        self.metrics.batches.inc()

    def _gauges(self, now_ms: int) -> None:
        marks = [s.book.watermark_ms for s in self.states.values() if s.book.watermark_ms > NO_TIME]
        if marks:
            self.metrics.watermark_lag.set(max(0.0, (now_ms - min(marks)) / 1000))
        self.metrics.open_windows.set(
            sum(len(w) for s in self.states.values() for w in s.book.open.values())
        )

    async def close(self) -> None:
        """Wait for the batch in flight, then flush and close every store (graceful stop)."""
        async with self.lock:
            inflight = self._inflight
            if inflight is not None:
                await asyncio.get_running_loop().run_in_executor(None, _wait, inflight)
            for state in self.states.values():
                state.store.close()
            self.states.clear()
            self.publisher.close()
            self._batches.shutdown(wait=False)


def _wait(future: Future[None]) -> None:
    try:
        future.result(timeout=120)
    except Exception:  # the batch's own failure was reported where it happened
        logger.warning("the last batch did not complete; it is replayed on restart")
