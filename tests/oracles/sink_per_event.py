"""The ClickHouse sink's per-event raw-event path before the columnar decode: the oracle.

`decode_chunk` here is what `sinks/clickhouse/decoding.py` did up to commit 60448fd:
`decode_record` builds a `UsageEvent` per event and the `raw_events` columns are read
back from the events. tests/unit/test_clickhouse_raw_columns.py checks the columnar
decode against it; `python -m bench.sink_legacy sink clickhouse` runs the real sink CLI
with this decode swapped in, as the benchmark's baseline.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

from tokenops.placement import home_partition
from tokenops.schemas.decode import decode_record
from tokenops.schemas.errors import InvalidEventError
from tokenops.schemas.event import UsageEvent
from tokenops.schemas.signing import signature_key_id
from tokenops.sinks.base import NOT_HOME, UNREADABLE, Skip
from tokenops.sinks.clickhouse.decoding import STORE_AHEAD_S, RawRecord
from tokenops.sinks.clickhouse.rows import EVENT_COLUMNS, Decoded

_OPTIONAL_IDS = frozenset({"project_id", "agent_id", "user_id", "api_key_id", "region", "node_id"})


def event_columns(
    events: list[UsageEvent], partitions: list[int], offsets: list[int], key_ids: list[str]
) -> list[list[object]]:
    fields = [e.__dict__ for e in events]
    columns: list[list[object]] = []
    for name in EVENT_COLUMNS:
        if name == "time":
            columns.append([e.time_ms for e in events])
        elif name == "kafka_partition":
            columns.append(list(partitions))
        elif name == "kafka_offset":
            columns.append(list(offsets))
        elif name == "kafka_element":  # records read alone (the oracle knows no bundle)
            columns.append([0] * len(events))
        elif name == "key_id":
            columns.append(list(key_ids))
        elif name in _OPTIONAL_IDS:
            columns.append([f[name] or "" for f in fields])
        else:
            columns.append([f[name] for f in fields])
    return columns


def decode_chunk(records: Sequence[RawRecord], partitions: int | None = None) -> Decoded:
    events: list[UsageEvent] = []
    positions: list[int] = []
    offsets: list[int] = []
    key_ids: list[str] = []
    skipped: list[Skip] = []
    for value, headers, partition, offset in records:
        try:
            pairs = cast("list[tuple[str, bytes]] | None", headers)
            decoded = decode_record(value, pairs, max_future_skew_s=STORE_AHEAD_S)
        except InvalidEventError as exc:
            skipped.append(Skip(UNREADABLE, str(exc)))
            continue
        if partitions is not None and partition != home_partition(decoded[0].tenant_id, partitions):
            skipped.append(Skip(NOT_HOME, decoded[0].tenant_id))
            continue
        events.extend(decoded)
        positions.extend([partition] * len(decoded))
        offsets.extend([offset] * len(decoded))
        key_ids.extend([signature_key_id(pairs) or ""] * len(decoded))
    return event_columns(events, positions, offsets, key_ids), skipped
