"""One usage partition's worker state, outside the worker: the tests' and the benchmarks'.

The worker's defaults: 60 s windows, 30 s allowed lateness, a day's dedup horizon, and a
store with hour buckets. Callers name what they vary (the decoder, the partition, how
many partitions the topic has, the store).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tokenops.schemas import UsageEvent
from tokenops.streams.partition import PartitionState
from tokenops.streams.state.store import PartitionStore


def partition_store(
    path: Path, store_class: type[PartitionStore] = PartitionStore
) -> PartitionStore:
    return store_class(path, bucket_ms=3_600_000, window_ms=60_000)


def partition_state(
    store: PartitionStore | Path,
    *,
    decode: Any,
    partition: int = 0,
    outputs: tuple[str, str] = ("aggregates", "dead-letter"),
    owner: str = "me",
    **more: Any,
) -> PartitionState:
    """The state of `partition` of the topic `usage` on `store` (a path: a new store)."""
    return PartitionState(
        topic="usage",
        partition=partition,
        store=partition_store(store) if isinstance(store, Path) else store,
        owner=owner,
        window_s=60,
        lateness_ms=30_000,
        horizon_ms=86_400_000,
        outputs=outputs,
        decode=decode,
        **more,
    )


def usage_event(i: int, t_ms: int, tenant: str) -> UsageEvent:
    """Event number `i` of `tenant` at `t_ms`; its input tokens (10 + i) tell events apart
    in totals."""
    return UsageEvent(
        id=f"e{i}",
        source="//node/1",
        time=datetime.fromtimestamp(t_ms / 1000, UTC),
        tenant_id=tenant,
        model="m1",
        provider="p",
        input_tokens=10 + i,
        output_tokens=4,
    )
