"""Raw usage records to `raw_events` columns, inline or in decoder processes.

Each record is decoded to columns (`decode_columns`, the event contract's decoder, the
same one the worker uses), never to per-event objects: the sink stores what it decodes
column by column, so building a `UsageEvent` per event would be most of its cost.
With `decode_processes > 0` chunks of records are decoded in that many spawned processes
while the sink keeps consuming. The rows come back in submission order, as columns.
Spawned, not forked: the sink process runs librdkafka and ClickHouse threads, which a
fork would copy in an undefined state.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from typing import cast

from tokenops.schemas import EventColumns, decode_columns
from tokenops.schemas.errors import InvalidEventError
from tokenops.schemas.signing import SignatureCheck
from tokenops.sinks.clickhouse.rows import Decoded, raw_event_columns

# (value, headers, partition, offset, key, timestamp_ms) of one usage record; the key and
# the Kafka timestamp are checked as the worker checks them (None: not checked / the clock)
RawRecord = tuple[bytes | None, object, int, int, bytes | None, int | None]


def decode_chunk(records: Sequence[RawRecord], check: SignatureCheck | None = None) -> Decoded:
    """Columns of every valid event; invalid records are counted and skipped (the worker
    dead-letters them). `check`: the worker's signature check, so raw events hold
    exactly the records the worker counts (it reads events, so only then are they built)."""
    parts: list[tuple[EventColumns, int, int]] = []
    invalid = 0
    for value, headers, partition, offset, key, timestamp_ms in records:
        try:
            pairs = cast("list[tuple[str, bytes]] | None", headers)
            # the worker's rules: the key must be the tenant, and the future-skew bound
            # counts from the record's Kafka timestamp, so both keep the same records
            columns = decode_columns(value, pairs, key=key, now_ms=timestamp_ms)
            if check is not None:
                check(columns.events(), pairs)
        except InvalidEventError:
            invalid += 1
            continue
        parts.append((columns, partition, offset))
    return raw_event_columns(parts), invalid


class EventDecoder:
    """Decodes chunks inline (`processes=0`) or in a pool of spawned processes."""

    def __init__(self, processes: int, check: SignatureCheck | None = None) -> None:
        self.processes, self.check = processes, check
        self.pool = (
            ProcessPoolExecutor(processes, mp_context=multiprocessing.get_context("spawn"))
            if processes
            else None
        )

    def submit(self, records: list[RawRecord]) -> Future[Decoded]:
        if self.pool is not None:
            return self.pool.submit(decode_chunk, records, self.check)
        done: Future[Decoded] = Future()
        done.set_result(decode_chunk(records, self.check))
        return done

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(cancel_futures=True)
