"""One input partition's worker state, and the processing of one batch of its records.

`PartitionState.process(records)` turns a batch into outputs (window totals, corrections,
dead letters, processor outputs) and one `StateDelta`; the caller makes the outputs and
the delta durable, in that order, then calls `commit()`. Nothing here talks to Kafka.
Every input record ends as exactly one of: counted (its events counted or recognised as
duplicates), forwarded to its tenant's home partition (`routing.py`) or dead-lettered;
records below `next_offset` were already done and skipped.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from itertools import chain, repeat
from operator import add, eq, or_
from typing import Any, NamedTuple

from tokenops.deadletters import DLQ_BUNDLE
from tokenops.schemas.aggregates import window_totals_record
from tokenops.schemas.columns import EventColumns, MixedColumns, select, select_mixed
from tokenops.schemas.decode import Fetch, bundle_elements, check_key, is_bundle
from tokenops.schemas.errors import InvalidEventError
from tokenops.streams.deadletter import dead_letter_record
from tokenops.streams.processors import OutputRecord, PartitionProcessor
from tokenops.streams.routing import (
    CREATE_TIME,
    LOG_APPEND_TIME,
    PlacementCheck,
    RecordRouter,
    event_clock,
)
from tokenops.streams.state.delta import StateDelta
from tokenops.streams.state.store import PartitionStore
from tokenops.streams.windows import NO_TIME, Totals, WindowBook, WindowId

logger = logging.getLogger(__name__)

# (value, headers, now_ms) -> the record's events as columns; `now_ms` is the record's
# event clock (`routing.event_clock`), never a time the producer alone chose, and the
# future-skew rule is checked against it. Raises InvalidEventError for a record to
# dead-letter.
Decoder = Callable[[bytes, Any, int], EventColumns]
# The same for a whole fetch (`decode.decode_fetch`): each record's columns or its
# InvalidEventError, its single events possibly as one chunk of many tenants.
ManyDecoder = Callable[[list[tuple[bytes, Any, int]]], Fetch]
# a batch's counted events, in offset order: records' columns, chunks of single events
Parts = list[EventColumns | MixedColumns]


def _one_by_one(decode: Decoder) -> ManyDecoder:
    def many(items: list[tuple[bytes, Any, int]]) -> Fetch:
        out: list[EventColumns | InvalidEventError | None] = []
        for value, headers, clock_ms in items:
            try:
                out.append(decode(value, headers, clock_ms))
            except InvalidEventError as exc:
                out.append(exc)
        return Fetch(out, None, [])

    return many


class InputRecord(NamedTuple):
    offset: int
    key: bytes | None
    value: bytes
    headers: Any  # list of (name, bytes) pairs, as the client gives them
    timestamp_ms: int
    timestamp_type: int = CREATE_TIME  # LOG_APPEND_TIME: stamped by the broker
    # a bundle's element (routing.py): (partition, offset) it was written at, its index
    origin: tuple[int, int, int] | None = None


@dataclass
class BatchCounts:
    records: int = 0
    skipped: int = 0  # below next_offset: already in the state (replay after a crash)
    dead_lettered: int = 0
    forwarded: int = 0  # sent to their tenant's home partition, counted there
    bundles: int = 0  # records produced to carry the forwarded ones (`routing.py`)
    events: int = 0  # events in counted records
    counted: int = 0
    duplicates: int = 0
    late_events: int = 0
    corrections: int = 0
    windows_closed: int = 0
    gaps: int = 0  # records that did not follow the previous one's offset
    dead_letter_fields: list[str] = field(default_factory=list)


CHUNK_EVENTS = 20_000


@dataclass
class _Chunk:
    """Decoded records waiting to be counted, and what this batch saw so far."""

    # in offset order: a record's columns, or a fetch's single events (`MixedColumns`)
    parts: list[EventColumns | MixedColumns] = field(default_factory=list)
    size: int = 0  # events in `parts`
    seen: set[str] = field(default_factory=set)  # dedup keys first seen in this batch
    buckets: dict[int, list[str]] = field(default_factory=dict)  # bucket -> those keys


class PartitionState:
    def __init__(
        self,
        *,
        topic: str,
        partition: int,
        store: PartitionStore,
        owner: str,
        window_s: int,
        lateness_ms: int,
        horizon_ms: int,
        outputs: tuple[str, str],  # aggregates topic, dead-letter topic
        decode: Decoder,
        processors: Sequence[PartitionProcessor] = (),
        partitions: int = 1,  # of the usage topic: where each tenant is at home
    ) -> None:
        self.topic, self.partition, self.store, self.owner = topic, partition, store, owner
        self.window_s, self.horizon_ms = window_s, horizon_ms
        self.aggregates_topic, self.dead_letter_topic = outputs
        self.decode = decode
        # the decoder's batch form when it has one (`streams/signing.py`), else record by record
        self.decode_many: ManyDecoder = getattr(decode, "many", None) or _one_by_one(decode)
        self.router = RecordRouter(topic, partition, partitions)
        self.processors = [PlacementCheck(partition, partitions), *processors]
        meta = store.meta
        self.next_offset: int = meta.get("next_offset", 0)
        self.book = WindowBook(
            window_s * 1000,
            lateness_ms,
            open_windows=store.open_windows(),
            max_event_ms=meta.get("max_event_ms", NO_TIME),
            watermark_ms=meta.get("watermark_ms", NO_TIME),
        )
        for processor in self.processors:
            processor.load(store.processor_state(processor.name))

    def process(
        self, records: Sequence[InputRecord], now_ms: int
    ) -> tuple[list[OutputRecord], StateDelta, BatchCounts]:
        """Count a batch, in chunks of about `CHUNK_EVENTS` decoded events, so memory
        stays bounded whatever the batch and record sizes. Records stay columns
        throughout (`EventColumns`): no per-event object is built."""
        counts = BatchCounts()
        outputs: list[OutputRecord] = []
        delta = StateDelta(self.owner, self.next_offset, self.next_offset)
        cutoff = self.book.watermark_ms - self.horizon_ms
        chunk = _Chunk()
        self.book.begin(self.store.closed_window)
        todo: list[tuple[InputRecord, int]] = []  # (record, its event clock)
        for record in records:
            if record.offset < self.next_offset:
                counts.skipped += 1
                continue
            counts.records += 1
            if record.offset > self.next_offset and self.next_offset:
                # only transaction markers or retention may skip offsets: anything else
                # means the consumer was positioned past the state (see docs/streams.md)
                counts.gaps += 1
                logger.warning(
                    "offset gap partition=%d expected=%d got=%d",
                    self.partition,
                    self.next_offset,
                    record.offset,
                )
            self.next_offset = record.offset + 1
            clock_ms = event_clock(record.timestamp_ms, record.timestamp_type, now_ms)
            if record.key is None and is_bundle(record.key, record.headers):
                self._unbundle(record, clock_ms, todo, counts, outputs, now_ms)
                continue
            at = (self.partition, record.offset)
            if self.router.forward_keyed(record.key, record.value, record.headers, clock_ms, at):
                counts.forwarded += 1  # away from its key's home: not decoded here (routing.py)
                continue
            todo.append((record, clock_ms))
        forwarded = self.router.take_forwarded()
        counts.bundles = sum(o.key is None for o in forwarded)  # a lone record keeps its key
        outputs += forwarded
        # one decode for the batch: its single-event records are checked together, and
        # stay one chunk of many tenants (`MixedColumns`) through dedup, windows, quotas
        results, mixed, rows = self.decode_many([(r.value, r.headers, c) for r, c in todo])
        if mixed is not None and any(r.__class__ is EventColumns for r in results):
            # batches among the single events: counted record by record, in offset order
            for i, part in zip(rows, mixed.records(), strict=True):
                results[i] = part
            mixed = None
        for (record, clock_ms), columns in zip(todo, results, strict=True):
            if columns is None:  # one event of `mixed`
                continue
            try:
                if columns.__class__ is not EventColumns:
                    raise columns  # type: ignore[misc]  # the record's InvalidEventError
                assert isinstance(columns, EventColumns)
                if not columns.id:
                    continue
                check_key(record.key, columns.tenant_id)
                forward = self.router.forward(columns, record.value, record.headers, clock_ms)
                if forward is None and min(columns.time_ms) < cutoff:
                    _too_late(columns, cutoff)
            except InvalidEventError as exc:
                counts.dead_lettered += 1
                counts.dead_letter_fields.append(exc.field)
                outputs.append(self._dead_letter(record, exc, now_ms))
                continue
            if forward is not None:  # counted in its home partition, never here
                counts.forwarded += 1
                outputs.append(forward)
                continue
            chunk.parts.append(columns)
            chunk.size += len(columns.id)
            if chunk.size >= CHUNK_EVENTS:
                self._count(chunk, counts, delta, outputs, now_ms)
        if mixed is not None:
            mixed = self._placed([todo[i] for i in rows], mixed, cutoff, counts, outputs, now_ms)
            done = 0
            while done < len(mixed):  # in chunks of `CHUNK_EVENTS` events, as records are
                end = min(len(mixed), done + CHUNK_EVENTS - chunk.size)
                chunk.parts.append(
                    mixed if (done, end) == (0, len(mixed)) else mixed.part(done, end)
                )
                chunk.size += end - done
                done = end
                if chunk.size >= CHUNK_EVENTS:
                    self._count(chunk, counts, delta, outputs, now_ms)
        self._count(chunk, counts, delta, outputs, now_ms)
        delta.next_offset = self.next_offset
        delta.dedup = {b: "\n".join(keys) for b, keys in chunk.buckets.items()}
        self._finish(delta, outputs, counts, now_ms, NO_TIME)
        return outputs, delta, counts

    def _unbundle(
        self,
        bundle: InputRecord,
        clock_ms: int,
        todo: list[tuple[InputRecord, int]],
        counts: BatchCounts,
        outputs: list[OutputRecord],
        now_ms: int,
    ) -> None:
        """Each record of a bundle joins the batch as if it had come alone, at the
        bundle's offset; its event clock is the one it had where it was written, never
        later than the bundle's own (`clock_ms`). A malformed bundle is dead-lettered."""
        try:
            elements = bundle_elements(bundle.value, bundle.headers)
        except InvalidEventError as exc:
            counts.dead_lettered += 1
            counts.dead_letter_fields.append(exc.field)
            outputs.append(self._dead_letter(bundle, exc, now_ms))
            return
        counts.records += len(elements) - 1  # records, as their partitions counted them
        for i, (key, value, headers, partition, offset, written_ms) in enumerate(elements):
            clock = min(written_ms, clock_ms)
            if self.router.forward_keyed(key, value, headers, clock, (partition, offset)):
                counts.forwarded += 1  # not a home of its key (a bundle no worker wrote)
                continue
            origin = (partition, offset, i)
            record = InputRecord(bundle.offset, key, value, headers, clock, LOG_APPEND_TIME, origin)
            todo.append((record, clock))

    def _placed(
        self,
        records: list[tuple[InputRecord, int]],
        mixed: MixedColumns,
        cutoff: int,
        counts: BatchCounts,
        outputs: list[OutputRecord],
        now_ms: int,
    ) -> MixedColumns:
        """The events of `mixed` to count here: the rules `process` applies to a record
        (key = tenant, home or forward, the dedup horizon) over the whole chunk at once,
        column by column; only a record that breaks one is looked at alone, dead-lettered
        or forwarded, in offset order, and left out of the chunk."""
        tenants = mixed.tenant
        keys = [record.key for record, _ in records]
        keyed_home = list(map(eq, keys, map(str.encode, tenants)))  # `forward_keyed` kept it
        times = mixed.events.time_ms
        if all(keyed_home) and min(times) >= cutoff:
            return mixed  # the common case: every record keyed by its tenant, at home
        keep = [True] * len(tenants)
        for j, at_home in enumerate(keyed_home):
            if at_home and times[j] >= cutoff:
                continue
            record, clock_ms = records[j]
            keep[j] = False
            try:
                if not at_home:
                    check_key(record.key, tenants[j])  # raises unless there is no key
                    columns = mixed.record(j)
                    forward = self.router.forward(columns, record.value, record.headers, clock_ms)
                    if forward is not None:  # counted in its home partition, never here
                        counts.forwarded += 1
                        outputs.append(forward)
                        continue
                if times[j] < cutoff:
                    _too_late(mixed.record(j), cutoff)
            except InvalidEventError as exc:
                counts.dead_lettered += 1
                counts.dead_letter_fields.append(exc.field)
                outputs.append(self._dead_letter(record, exc, now_ms))
                continue
            keep[j] = True
        return mixed if all(keep) else select_mixed(mixed, keep)

    def idle_tick(self, now_ms: int, floor_ms: int) -> tuple[list[OutputRecord], StateDelta] | None:
        """Advance the watermark to `floor_ms`; a delta only if some window closed."""
        self.book.begin(self.store.closed_window)
        delta = StateDelta(self.owner, self.next_offset, self.next_offset)
        outputs: list[OutputRecord] = []
        counts = BatchCounts()
        self._finish(delta, outputs, counts, now_ms, floor_ms)
        return (outputs, delta) if delta.closed else None

    def commit(self, delta: StateDelta, changelog_next: int) -> None:
        """The delta is in the changelog at `changelog_next - 1`: make it local."""
        self.store.apply(delta, changelog_next, self.owner)

    def _count(
        self,
        chunk: _Chunk,
        counts: BatchCounts,
        delta: StateDelta,
        outputs: list[OutputRecord],
        now_ms: int,
    ) -> None:
        """Deduplicate and window the chunk's records, then feed their fresh events to
        the processors; empties `chunk.parts` (its dedup keys stay for the whole batch).

        One RocksDB multi-get for the chunk's keys: an event is fresh unless it was
        stored before or seen earlier in this batch. When every event of the chunk is
        fresh (the common case) that is decided once for the whole chunk, whether it
        holds one record of 10,000 events or 10,000 records of one; otherwise record by
        record, in offset order (`_dedup_parts`).
        """
        parts, chunk.parts, size, chunk.size = chunk.parts, [], chunk.size, 0
        if not parts:
            return
        keys = _dedup_keys(parts)
        stored = self.store.seen(keys)
        seen_now, buckets, bucket_ms = chunk.seen, chunk.buckets, self.store.bucket_ms
        new = set(keys)
        if len(new) == len(keys) and not any(stored) and new.isdisjoint(seen_now):
            # the common case, whatever the records' packing: every event of the chunk is
            # fresh, decided once for the chunk
            seen_now |= new
            _bucket_each(buckets, keys, _times(parts), bucket_ms)
            fresh = parts
        else:
            fresh = self._dedup_parts(parts, keys, stored, chunk)
        self.book.add_records(fresh)
        counted = sum(map(len, fresh))
        counts.events += size
        counts.counted += counted
        counts.duplicates += size - counted
        for processor in self.processors:
            extra, changes = processor.apply(fresh, now_ms=now_ms)
            outputs.extend(extra)
            delta.processors.setdefault(processor.name, {}).update(changes)

    def _dedup_parts(
        self, parts: Parts, keys: list[str], stored: list[bool], chunk: _Chunk
    ) -> Parts:
        """Record by record, in offset order: the fresh events of each. A record of fresh
        events and a record sent again whole are set operations; a record with some
        duplicates goes event by event (`_dedup_each`), keeping first occurrences."""
        seen_now, buckets, bucket_ms = chunk.seen, chunk.buckets, self.store.bucket_ms
        fresh: Parts = []
        position = 0
        for part in parts:
            n = len(part)
            part_keys = keys[position : position + n]
            olds = stored[position : position + n]
            position += n
            new = set(part_keys)
            if len(new) == n and not any(olds) and new.isdisjoint(seen_now):
                seen_now |= new  # every event of the record is fresh
                _bucket_each(buckets, part_keys, _columns(part).time_ms, bucket_ms)
                fresh.append(part)
            elif all(map(or_, olds, map(seen_now.__contains__, part_keys))):
                continue  # every event counted before: the record was sent again
            else:
                times = _columns(part).time_ms
                mask = _dedup_each(part_keys, times, olds, seen_now, buckets, bucket_ms)
                if any(mask):
                    fresh.append(
                        select_mixed(part, mask)
                        if isinstance(part, MixedColumns)
                        else select(part, mask)
                    )
        return fresh

    def _finish(
        self,
        delta: StateDelta,
        outputs: list[OutputRecord],
        counts: BatchCounts,
        now_ms: int,
        floor_ms: int,
    ) -> None:
        result = self.book.finish(watermark_floor_ms=floor_ms)
        counts.late_events += result.late_events
        counts.corrections += result.corrections
        counts.windows_closed += len(result.closed)
        delta.watermark_ms = self.book.watermark_ms
        delta.max_event_ms = self.book.max_event_ms
        if self.book.watermark_ms > NO_TIME:
            delta.expire_before_ms = self.book.watermark_ms - self.horizon_ms
        delta.open = [(t, m, r, s, v) for (t, m, r, s), v in result.open.items()]
        delta.unopened = result.closed
        delta.closed = [(t, m, r, s, v) for (t, m, r, s), v in result.emitted.items()]
        for window, totals in result.emitted.items():
            outputs.append(self._totals_record(window, totals, now_ms))

    def _totals_record(self, window: WindowId, v: Totals, now_ms: int) -> OutputRecord:
        tenant_id, model, region, start = window
        key, value = window_totals_record(tenant_id, model, region, start, self.window_s, v, now_ms)
        return OutputRecord(self.aggregates_topic, key, value)

    def _dead_letter(
        self, record: InputRecord, exc: InvalidEventError, now_ms: int
    ) -> OutputRecord:
        origin = record.origin  # a bundle's element: named where it was written
        value, headers = dead_letter_record(
            record.value,
            record.headers,
            reason=str(exc.message),
            field=exc.field,
            topic=self.topic,
            partition=self.partition if origin is None else origin[0],
            offset=record.offset if origin is None else origin[1],
            time_ms=now_ms,
        )
        if origin is not None:  # where it was read: the bundle, and its index there
            headers.append((DLQ_BUNDLE, b"%d:%d:%d" % (self.partition, record.offset, origin[2])))
        return OutputRecord(self.dead_letter_topic, record.key, value, headers)


def _too_late(columns: EventColumns, cutoff: int) -> None:
    """Raise the error of the first event older than `cutoff` (the dedup horizon)."""
    times = columns.time_ms
    i = next(i for i, t in enumerate(times) if t < cutoff)
    raise InvalidEventError(
        "time", columns.times()[i], "too_late: older than the dedup horizon", index=i
    )


def _dedup_each(
    keys: list[str],
    times: list[int],
    olds: list[bool],
    seen_now: set[str],
    buckets: dict[int, list[str]],
    bucket_ms: int,
) -> list[bool]:
    """The exact path, event by event: which events of a record are fresh (not stored
    before, not seen earlier in the batch); files the fresh ones' keys as seen."""
    mask: list[bool] = []
    for key, time_ms, old in zip(keys, times, olds, strict=True):
        if old or key in seen_now:
            mask.append(False)
            continue
        seen_now.add(key)
        b = time_ms // bucket_ms
        bucket = buckets.get(b)
        if bucket is None:
            bucket = buckets[b] = []
        bucket.append(key)
        mask.append(True)
    return mask


def _columns(part: EventColumns | MixedColumns) -> EventColumns:
    """The columns but the tenant of a record or of a chunk of single events."""
    return part.events if isinstance(part, MixedColumns) else part


def _dedup_keys(parts: Parts) -> list[str]:
    """`source NUL id` of every event of these records, in order (`dedup_keys`)."""
    columns = list(map(_columns, parts))
    sources = list(chain.from_iterable(c.source for c in columns))
    ids = chain.from_iterable(c.id for c in columns)
    return list(map(add, map(add, sources, repeat("\x00", len(sources))), ids))


def _times(parts: Parts) -> list[int]:
    return list(chain.from_iterable(_columns(part).time_ms for part in parts))


def _bucket_each(
    buckets: dict[int, list[str]], keys: list[str], times: list[int], bucket_ms: int
) -> None:
    """File fresh events' dedup keys under their event-time bucket."""
    low = min(times) // bucket_ms
    if low == max(times) // bucket_ms:  # usually: one bucket for all
        bucket = buckets.get(low)
        if bucket is None:
            bucket = buckets[low] = []
        bucket += keys
        return
    for key, time_ms in zip(keys, times, strict=True):
        b = time_ms // bucket_ms
        bucket = buckets.get(b)
        if bucket is None:
            bucket = buckets[b] = []
        bucket.append(key)
