"""Raw usage records to `raw_events` columns, inline or in decoder processes.

Each record is decoded to columns (`decode_many`, the event contract's decoder, the
same one the worker uses), never to per-event objects: the sink stores what it decodes
column by column, so building a `UsageEvent` per event would be most of its cost.
The sink does not judge records (`verdicts.py`): no signature, key or clock check here;
the worker's dead letters say which stored records were not counted. It stores only a
record in its tenant's home partition: one that landed elsewhere is forwarded there by
the worker, and that copy, the one the worker counts, is stored instead. A keyed record
away from its key's home never reaches this decoder (`ClickHouseSink`, `key_home`); the
records of a worker's bundle reach it one by one, each as it was written.
With `decode_processes > 0` chunks of records are decoded in that many spawned processes
while the sink keeps consuming. The rows come back in submission order, as columns.
Spawned, not forked: the sink process runs librdkafka and ClickHouse threads, which a
fork would copy in an undefined state.
"""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from typing import cast

from tokenops.placement import home_partition
from tokenops.schemas.columns import EventColumns
from tokenops.schemas.decode import decode_many
from tokenops.schemas.signing import signature_key_id
from tokenops.sinks.base import NOT_HOME, UNREADABLE, Skip
from tokenops.sinks.clickhouse.rows import Decoded, RecordPart, raw_event_columns

# (value, headers, partition, offset) of one usage record, and for a record read from a
# bundle (`ClickHouseSink`, `decode.bundle_elements`) its index there: it is stored at
# the bundle's partition and offset, as the worker names it in a dead letter
RawRecord = tuple[bytes | None, object, int, int] | tuple[bytes | None, object, int, int, int]

# How far ahead an event may be is the worker's verdict (dead letter `future`): it
# accepts at most its allowed skew (300 s) ahead of its clock, and it reads a record at
# most the usage topic's retention (7 days) after the sink does. The sink's own bound is
# far looser, so it never drops what the worker counts; it only keeps a hostile record's
# far-future months (one ClickHouse partition each) out of the table.
STORE_AHEAD_S = 8 * 86_400


def decode_chunk(records: Sequence[RawRecord], partitions: int | None = None) -> Decoded:
    """Columns of every readable event, and a `Skip` per record not stored: unreadable
    ones and those more than `STORE_AHEAD_S` ahead (the worker dead-letters both) and,
    given the usage topic's `partitions`, those outside their tenant's home partition
    (the worker forwards them home)."""
    now_ms = int(time.time() * 1000)
    parts: list[RecordPart] = []
    skipped: list[Skip] = []
    pairs = [cast("list[tuple[str, bytes]] | None", r[1]) for r in records]
    decoded = decode_many(
        [(cast(bytes, r[0]), h, now_ms) for r, h in zip(records, pairs, strict=True)],
        max_future_skew_s=STORE_AHEAD_S,
    )
    for record, headers, columns in zip(records, pairs, decoded, strict=True):
        partition, offset = record[2], record[3]
        if columns.__class__ is not EventColumns:  # unreadable: the worker dead-letters it
            skipped.append(Skip(UNREADABLE, f"partition={partition} offset={offset}: {columns}"))
            continue
        assert isinstance(columns, EventColumns)
        if partitions is not None and partition != home_partition(columns.tenant_id, partitions):
            detail = f"partition={partition} offset={offset} tenant_id={columns.tenant_id!r}"
            skipped.append(Skip(NOT_HOME, detail))
            continue
        element = record[4] if len(record) == 5 else 0
        parts.append((columns, partition, offset, signature_key_id(headers) or "", element))
    return raw_event_columns(parts), skipped


class EventDecoder:
    """Decodes chunks inline (`processes=0`) or in a pool of spawned processes."""

    def __init__(self, processes: int) -> None:
        self.processes = processes
        self.pool = (
            ProcessPoolExecutor(processes, mp_context=multiprocessing.get_context("spawn"))
            if processes
            else None
        )

    def submit(self, records: list[RawRecord], partitions: int | None) -> Future[Decoded]:
        if self.pool is not None:
            return self.pool.submit(decode_chunk, records, partitions)
        done: Future[Decoded] = Future()
        done.set_result(decode_chunk(records, partitions))
        return done

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(cancel_futures=True)
