"""Raw usage records to `raw_events` columns, inline or in decoder processes.

Each chunk of records is decoded to columns (`decode_fetch`, the event contract's
decoder, the same one the worker uses), never to per-event objects: the sink stores what it decodes
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
from functools import lru_cache
from itertools import chain, compress, repeat
from operator import eq, itemgetter, not_
from typing import cast

from tokenops.placement import home_partition
from tokenops.schemas.columns import EventColumns, MixedColumns
from tokenops.schemas.decode import decode_fetch
from tokenops.schemas.signing import SIGNATURE_HEADER, signature_key_id
from tokenops.sinks.base import NOT_HOME, UNREADABLE, Skip
from tokenops.sinks.clickhouse.rows import (
    Decoded,
    RecordPart,
    mixed_event_columns,
    raw_event_columns,
)

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
    (the worker forwards them home). Rows and skips in record order.

    The decoder gives a chunk's single CloudEvents as one chunk of many tenants
    (`decode_fetch`), whose lists become the insert's columns as they are. Batch records
    are joined record by record (`raw_event_columns`); so are single events that share
    a chunk with batches (rare: a topic that mixes producers), to keep record order.
    """
    now_ms = int(time.time() * 1000)
    pairs = [cast("list[tuple[str, bytes]] | None", r[1]) for r in records]
    results, mixed, rows = decode_fetch(
        [(cast(bytes, r[0]), h, now_ms) for r, h in zip(records, pairs, strict=True)],
        max_future_skew_s=STORE_AHEAD_S,
    )
    key_ids = _key_ids(pairs)
    if mixed is not None and EventColumns in set(map(type, results)):
        for i, one in zip(rows, mixed.records(), strict=True):
            results[i] = one
        mixed = None
    skipped: list[tuple[int, Skip]] = []  # (record index, why): sorted at the end
    parts: list[RecordPart] = []
    others = () if results.count(None) == len(results) else enumerate(results)
    for i, result in others:
        if result is None:  # an event of `mixed`
            continue
        record = records[i]
        partition, offset = record[2], record[3]
        if result.__class__ is not EventColumns:  # unreadable: the worker dead-letters it
            detail = f"partition={partition} offset={offset}: {result}"
            skipped.append((i, Skip(UNREADABLE, detail)))
            continue
        assert isinstance(result, EventColumns)
        if partitions is not None and partition != _home(result.tenant_id, partitions):
            detail = f"partition={partition} offset={offset} tenant_id={result.tenant_id!r}"
            skipped.append((i, Skip(NOT_HOME, detail)))
            continue
        element = record[4] if len(record) == 5 else 0
        parts.append((result, partition, offset, key_ids[i], element))
    if mixed is None:
        columns = raw_event_columns(parts)
    else:
        columns = _mixed_columns(mixed, rows, records, key_ids, partitions, skipped)
    if len(skipped) > 1:
        skipped.sort(key=_INDEX)
    return columns, [skip for _, skip in skipped]


def _mixed_columns(
    mixed: MixedColumns,
    rows: list[int],
    records: Sequence[RawRecord],
    key_ids: list[str],
    partitions: int | None,
    skipped: list[tuple[int, Skip]],
) -> list[list[object]]:
    """The `raw_events` columns of `mixed` (record `rows[j]` holds its event j) but of
    the events outside their tenant's home partition, which go to `skipped`."""
    mine = [records[i] for i in rows] if len(rows) < len(records) else records
    partition = list(map(_PARTITION, mine))
    offset = list(map(_OFFSET, mine))
    ids = key_ids if len(rows) == len(records) else [key_ids[i] for i in rows]
    alone = set(map(len, mine)) == {4}  # no record read from a bundle: every element 0
    element = [0] * len(mine) if alone else [r[4] if len(r) == 5 else 0 for r in mine]
    columns = mixed_event_columns(mixed, partition, offset, ids, element)
    if partitions is None:
        return columns
    keep = list(map(eq, map(_home, mixed.tenant, repeat(partitions)), partition))
    if keep.count(True) == len(keep):
        return columns
    for j in compress(range(len(keep)), map(not_, keep)):
        detail = f"partition={partition[j]} offset={offset[j]} tenant_id={mixed.tenant[j]!r}"
        skipped.append((rows[j], Skip(NOT_HOME, detail)))
    return [list(compress(column, keep)) for column in columns]


def _key_ids(headers: list[list[tuple[str, bytes]] | None]) -> list[str]:
    """The signing key id each record names ('' for none): one look per record only
    when some record of the chunk has a signature header."""
    names = set(map(_NAME, chain.from_iterable(filter(None, headers))))
    if SIGNATURE_HEADER not in names:
        return [""] * len(headers)
    return [signature_key_id(h) or "" for h in headers]


@lru_cache(maxsize=100_000)  # bounded: tenants come from producers
def _home(tenant_id: str, partitions: int) -> int:
    """`home_partition`, remembered per tenant: a murmur2 per event was a tenth of the
    sink's decode of single events."""
    return home_partition(tenant_id, partitions)


_INDEX = _NAME = itemgetter(0)
_PARTITION, _OFFSET = itemgetter(2), itemgetter(3)


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
