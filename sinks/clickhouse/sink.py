"""`ClickHouseSink`: window totals (and raw usage events) from Kafka into ClickHouse.

With raw events on, it also consumes the worker's dead-letter topic: raw events follow
the worker's verdicts, never the sink's own (`verdicts.py`).

The loop is `sinks/base.py`'s collect -> write -> commit. A record not stored is counted
with its reason (`tokenops_clickhouse_sink_invalid_records_total{role, reason}`) and
logged with a sample. A batch closes at `batch_max_rows` rows or
`batch_max_ms` after its first record. Offsets are committed only after `write` returned,
that is after the batch is durable; while writes fail the sink retries with exponential
backoff, holds the batch, commits nothing, and reports it in metrics and logs. Every write
is idempotent (see `ClickHouseWriter`), so anything re-read after a crash or a rebalance
is written again with the same effect.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from typing import Any, Protocol, cast

from confluent_kafka import Consumer, KafkaError, Message, TopicPartition
from pydantic import ValidationError

from tokenops.placement import key_home
from tokenops.schemas import WindowTotals
from tokenops.schemas.decode import bundle_elements, is_bundle
from tokenops.schemas.errors import InvalidEventError
from tokenops.settings import KafkaSettings, TopicSettings
from tokenops.sinks.base import NOT_HOME, UNREADABLE, BatchingSink, Skip, SkippedRecords
from tokenops.sinks.clickhouse.decoding import EventDecoder, RawRecord
from tokenops.sinks.clickhouse.metrics import SinkMetrics
from tokenops.sinks.clickhouse.rows import Batch
from tokenops.sinks.clickhouse.settings import ClickHouseSettings
from tokenops.sinks.clickhouse.verdicts import dead_letter_row
from tokenops.sinks.clickhouse.watermarks import WatermarkTracker

logger = logging.getLogger(__name__)

# Usage records decoded per call. Decoding builds a few dozen short-lived objects per
# event; in chunks of 10,000 single-event records it cost 2.3x the CPU per event of
# chunks of 100-500 (process time, one core: 36k against 60-85k events/s), as a chunk's
# garbage outgrows the caches and the young generations of the collector.
DECODE_CHUNK_RECORDS = 500
# The collector's first threshold in the sink process (Python's default is 700): the
# decoder's garbage is freed by reference counting, so frequent young collections only
# re-scan it; at 10,000 decoding took a third of the CPU per event it took at 700.
GC_YOUNG_THRESHOLD = 10_000
Offsets = dict[tuple[str, int], int]
KEY_HOMES_KEPT = 100_000  # usage record keys whose home partition the sink remembers
_UNKNOWN = -1


def raise_young_gc_threshold() -> None:
    """For the sink's own process (`tokenops sink clickhouse`): the collector setting is
    process-wide, so a sink run inside another program leaves it to that program."""
    if gc.get_threshold()[0] < GC_YOUNG_THRESHOLD:
        gc.set_threshold(GC_YOUNG_THRESHOLD, *gc.get_threshold()[1:])


class BatchWriter(Protocol):
    def write(self, batch: Batch) -> None:
        """Store the batch durably or raise; called again with the same batch on failure."""


class ClickHouseSink(BatchingSink[Batch, Offsets]):
    """One consumer in the sink's group; `run()` until `stop` is set."""

    def __init__(
        self,
        kafka: KafkaSettings,
        topics: TopicSettings,
        settings: ClickHouseSettings,
        writer: BatchWriter,
        metrics: SinkMetrics,
        stop: threading.Event | None = None,
        watermarks: WatermarkTracker | None = None,
    ) -> None:
        super().__init__(stop)
        self.settings = settings
        # The usage partitions' watermarks, for `as_of`: only with raw events (their times)
        self.watermarks = watermarks if settings.raw_events else None
        self._last_watermarks = 0.0
        self.writer = writer
        self.metrics = metrics
        self.aggregates_topic = topics.aggregates
        self.usage_topic = topics.usage if settings.raw_events else None
        self.dead_letter_topic = topics.dead_letter if settings.raw_events else None
        config: dict[str, Any] = {
            # A sink blocked on ClickHouse does not poll; it must not be evicted meanwhile.
            "max.poll.interval.ms": 3_600_000,
            **kafka.librdkafka(),
            "group.id": settings.consumer_group,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        }
        self.consumer = Consumer(config)
        self.decoder = EventDecoder(settings.decode_processes)
        # The usage topic's partition count, for the home-partition rule; read again
        # after each assignment (the worker refuses to run across a change of it).
        self._partitions: int | None = None
        self._chunk: list[RawRecord] = []
        # usage records of the last consume call not decoded (away from their key's home):
        # how many, and the first one's position, key and home, for the log sample
        self._away = 0
        self._first_away: tuple[int, int, bytes | None, int] = (0, 0, None, 0)
        self._usage_seen: set[int] = set()  # usage partitions of the last consume call
        self._key_homes: dict[bytes, int | None] = {}  # `key_home`, per key seen
        # Rows per usage record, learned from decoded chunks. It starts at a typical
        # batch record's size so the first consume cannot take far more events than a
        # batch holds (starting at 1 made the first batch up to 10,000 records' events).
        self._rows_per_record = 100.0
        # Records are counted per consume call, not per record: `labels()` and the
        # counter's lock per record were 2% and then 10% of the sink's profile with
        # 100-event records (far more with single events).
        roles = ("aggregates", "usage", "dead_letter")
        self._records = {role: metrics.records.labels(role) for role in roles}
        self._consumed = dict.fromkeys(roles, 0)
        self.skipped = SkippedRecords(metrics.invalid, logger)
        self._batch = Batch()
        self._offsets: Offsets = {}
        self._deadline: float | None = None

    def start(self) -> None:
        topics = [self.aggregates_topic]
        if self.usage_topic and self.dead_letter_topic:
            topics += [self.usage_topic, self.dead_letter_topic]
        self.consumer.subscribe(topics, on_assign=self._on_assign, on_revoke=self._on_revoke)
        logger.info("clickhouse sink consuming topics=%s", ",".join(topics))

    def close(self) -> None:
        self.consumer.close()
        self.decoder.close()

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._partitions = None
        self._key_homes = {}
        if self.watermarks is not None:
            self.watermarks.assigned(p.partition for p in partitions if p.topic == self.usage_topic)

    def usage_partitions(self) -> int:
        """The usage topic's partition count, from the broker once per assignment."""
        if self._partitions is None:
            assert self.usage_topic is not None
            metadata = self.consumer.list_topics(self.usage_topic, timeout=30)
            self._partitions = len(metadata.topics[self.usage_topic].partitions)
        return self._partitions

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # Called inside consume(): finish the batch in hand while its partitions are still
        # ours, so the next owner starts exactly after it. Nothing is dropped.
        self.flush_pending()

    def take(self) -> tuple[Batch, Offsets]:
        batch, offsets = self._batch, self._offsets
        self._batch, self._offsets, self._deadline = Batch(), {}, None
        return batch, offsets

    def flush_pending(self) -> None:
        """Write the pending batch and commit its offsets (kept if stopped mid-outage)."""
        batch, offsets = self.take()
        if (offsets or self.watermarks is not None) and self.write(batch) and offsets:
            self.commit(offsets)

    def collect(self) -> None:
        """Consume until the batch is full or `batch_max_ms` passed since its first record."""
        while not self.stop.is_set() and len(self._batch) < self.settings.batch_max_rows:
            now = time.monotonic()
            if self._deadline is not None and now >= self._deadline:
                break
            if self._deadline is None and self._watermarks_due(now):
                break  # a quiet topic: idle partitions' watermarks still advance
            wait = 0.2 if self._deadline is None else min(0.2, self._deadline - now)
            # Records, not rows: a batch record holds many events, so estimate how many.
            rows_left = self.settings.batch_max_rows - len(self._batch)
            room = max(1, min(10_000, int(rows_left / self._rows_per_record)))
            messages = self.consumer.consume(num_messages=room, timeout=wait)
            self._add_all(messages)
            for role, count in self._consumed.items():
                if count:
                    self._records[role].inc(count)
                    self._consumed[role] = 0
            if self._usage_seen:
                if self.watermarks is not None:
                    self.watermarks.saw(self._usage_seen)
                self._usage_seen = set()
            if self._away:
                detail = "partition={} offset={} key={!r} home={}".format(*self._first_away)
                self.skipped.repeated("usage", Skip(NOT_HOME, detail), self._away)
                self._away = 0
            for at in range(0, len(self._chunk), DECODE_CHUNK_RECORDS):
                chunk = self._chunk[at : at + DECODE_CHUNK_RECORDS]
                expected = int(len(chunk) * self._rows_per_record)
                self._batch.add_pending(
                    self.decoder.submit(chunk, self.usage_partitions()), len(chunk), expected
                )
                self.skipped.skipped("usage", self._batch.resolve_ready())
                while len(self._batch.pending) > 2 * max(1, self.decoder.processes):
                    # backpressure: a bounded number of chunks in flight
                    self.skipped.skipped("usage", self._batch.resolve_oldest())
            if self._chunk:
                self._chunk = []
                if self._batch.decoded_records:
                    ratio = self._batch.event_rows / self._batch.decoded_records
                    self._rows_per_record = max(1.0, ratio)
            if messages and self._deadline is None:
                self._deadline = now + self.settings.batch_max_ms / 1000

    def _add_all(self, messages: list[Message]) -> None:
        """Add one consume call's records. Usage records take a loop of their own: with
        single-event records the sink reads at least one per stored event (and under
        librdkafka's default partitioner three in four of them away from home), so each
        step per record counts (`_add` per record was a quarter of the consume loop's
        samples)."""
        usage_topic = self.usage_topic
        homes, append = self._key_homes, self._chunk.append
        last: dict[int, int] = {}  # usage partition -> its last offset in this call
        others = 0
        partition: Any  # an int for a record without error: no assert per record
        offset: Any
        for message in messages:
            if message.error() is not None or message.topic() != usage_topic:
                others += 1
                position = self._add(self._batch, message)
                if position is not None:
                    self._offsets[position[0]] = position[1]
                continue
            partition, offset, key = message.partition(), message.offset(), message.key()
            last[partition] = offset
            home = homes.get(key, _UNKNOWN) if key else None
            if home == _UNKNOWN:
                home = self._key_home(cast(bytes, key))
            if home is not None and home != partition:
                # The worker forwards it home undecoded (`key_home`); that copy is stored.
                # Not decoding it here spares most of the decoding of a stream that
                # librdkafka's default partitioner spread (three records in four with 4
                # partitions).
                if not self._away:  # described only if logged: one sample per consume call
                    self._first_away = (partition, offset, key, home)
                self._away += 1
                continue
            headers = message.headers()
            if key is None and is_bundle(key, headers):
                self._unbundle(message.value(), headers, partition, offset)
                continue
            append((message.value(), headers, partition, offset))
        if last:
            assert usage_topic is not None
            for partition, offset in last.items():
                self._offsets[(usage_topic, partition)] = offset + 1
            self._usage_seen.update(last)
            self._consumed["usage"] += len(messages) - others
            self._batch.records += len(messages) - others

    def _add(self, batch: Batch, message: Message) -> tuple[tuple[str, int], int] | None:
        """Add one record of the aggregates or dead-letter topic (`_add_all` adds usage
        records); returns ((topic, partition), next offset), None for an error."""
        error = message.error()
        if error is not None:
            if error.code() != KafkaError._PARTITION_EOF:
                logger.warning("kafka consumer error: %s", error.str())
            return None
        topic, partition, offset = message.topic(), message.partition(), message.offset()
        assert topic is not None and partition is not None and offset is not None
        position = ((topic, partition), offset + 1)
        batch.records += 1
        value = message.value()
        if topic == self.aggregates_topic:
            self._consumed["aggregates"] += 1
            if value is None:  # a compaction tombstone
                return position
            try:
                batch.add_window(WindowTotals.from_bytes(value))
            except (ValueError, ValidationError) as exc:
                detail = f"partition={partition} offset={offset}: {exc}"
                self.skipped.skipped("aggregates", [Skip(UNREADABLE, detail)])
            return position
        if topic == self.dead_letter_topic:
            self._consumed["dead_letter"] += 1
            assert self.usage_topic is not None
            headers = cast("list[tuple[str, bytes]] | None", message.headers())
            row = dead_letter_row(headers, message.key(), self.usage_topic)
            if row is not None:
                batch.dead_letters.append(row)
        return position

    def _unbundle(self, value: bytes | None, headers: Any, partition: int, offset: int) -> None:
        """The records of a worker's bundle (`decode.bundle_elements`), each decoded as a
        record of its own and stored under the bundle's position and its index there; one
        whose key's home is elsewhere the worker forwards on, like any record away."""
        try:
            elements = bundle_elements(value, headers)
        except InvalidEventError as exc:  # the worker dead-letters it whole
            detail = f"partition={partition} offset={offset}: {exc}"
            self.skipped.skipped("usage", [Skip(UNREADABLE, detail)])
            return
        for index, element in enumerate(elements):
            home = self._key_home(element.key)
            if home != partition:
                if not self._away:
                    self._first_away = (partition, offset, element.key, home or 0)
                self._away += 1
                continue
            self._chunk.append((element.value, element.headers, partition, offset, index))

    def _key_home(self, key: bytes) -> int | None:
        """`key_home`, remembered per key until the next assignment: a dict look-up per
        record instead of a murmur2 (which took 6 % of the sink's samples)."""
        home = self._key_homes.get(key, _UNKNOWN)
        if home == _UNKNOWN:
            if len(self._key_homes) >= KEY_HOMES_KEPT:  # bounded: keys come from producers
                self._key_homes.clear()
            home = self._key_homes[key] = key_home(key, self.usage_partitions())
        return home

    def write(self, batch: Batch) -> bool:
        """Write `batch`, retrying with backoff until it is durable; False if stopped first."""
        while batch.pending:
            self.skipped.skipped("usage", batch.resolve_oldest())
        self._add_watermarks(batch)
        if not (batch.windows or batch.event_rows or batch.dead_letters or batch.watermarks):
            return True
        delay_ms = self.settings.retry_initial_ms
        attempt = 0
        while True:
            attempt += 1
            started = time.monotonic()
            try:
                self.writer.write(batch)
            except Exception as exc:  # any storage failure: hold the batch, retry
                self.metrics.write_failures.inc()
                self.metrics.blocked.set(1)
                logger.warning(
                    "clickhouse write failed attempt=%d rows=%d retry_in_ms=%d: %s",
                    attempt,
                    len(batch),
                    delay_ms,
                    exc,
                )
                if self.stop.wait(delay_ms / 1000):
                    logger.warning("stopping with an unwritten batch; its offsets stay uncommitted")
                    return False
                delay_ms = min(delay_ms * 2, self.settings.retry_max_ms)
                continue
            self.metrics.write_seconds.observe(time.monotonic() - started)
            if attempt > 1:
                logger.info("clickhouse writes recovered after attempts=%d", attempt)
                if self.watermarks is not None:
                    self.watermarks.resumed()
            self.metrics.blocked.set(0)
            self.metrics.rows.labels("raw_events").inc(batch.event_rows)
            self.metrics.rows.labels("window_totals").inc(len(batch.windows))
            self.metrics.rows.labels("dead_letters").inc(len(batch.dead_letters))
            return True

    def _watermarks_due(self, now: float) -> bool:
        return self.watermarks is not None and now - self._last_watermarks >= 1.0

    def _add_watermarks(self, batch: Batch) -> None:
        """Advance the watermarks by the batch's events and idle partitions; written at
        most every second (an idle partition's watermark moves with the wall clock)."""
        if self.watermarks is None:
            return
        self.watermarks.observe(batch.events)
        now = time.monotonic()
        if not self._watermarks_due(now) and not batch.event_rows:
            return
        self._last_watermarks = now
        self.watermarks.idle_advance()
        if self.watermarks.changed:
            batch.watermarks = self.watermarks.rows(self.usage_partitions())

    def commit(self, offsets: Offsets) -> None:
        """Commit after a durable write. A failed commit only means a harmless replay."""
        positions = [TopicPartition(t, p, o) for (t, p), o in offsets.items()]
        try:
            self.consumer.commit(offsets=positions, asynchronous=False)
        except Exception as exc:
            logger.warning("offset commit failed (the batch will be replayed): %s", exc)
            return
        self.metrics.batches.inc()
        self.metrics.last_commit.set_to_current_time()
