"""What deduplication costs the worker: its batch path with and without the dedup store.

`python -m bench.bench_dedup_cost [events] [events_per_record] [tenants]` runs the
worker's batch path in this process (no Kafka): `PartitionState.process` on v2 records of
4 partitions, the changelog delta's bytes and the RocksDB apply, in batches of 500
records, and reports events per CPU-second, median of 3 interleaved rounds of:

1. dedup on (the worker as it runs): every event's `source NUL id` looked up in RocksDB,
   the new keys written with the batch;
2. dedup store off: lookups answered "not seen" without RocksDB and no keys written (the
   in-batch set of keys is kept). Not exact under replays or resends: a measurement only.

The worker has no switch for this on purpose: exactly-once counting rests on it.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

from bench.bench_worker import v2_records
from tests.harness.partition import partition_state, partition_store
from tokenops.placement import home_partition
from tokenops.schemas import COLUMNS_HEADERS
from tokenops.streams.partition import InputRecord
from tokenops.streams.signing import worker_decoder
from tokenops.streams.state.store import PartitionStore

BATCH_RECORDS = 500


class NoDedupStore(PartitionStore):
    """A store whose dedup index is empty and stays empty."""

    def seen(self, keys: list[str]) -> list[bool]:
        return [False] * len(keys)


def run(parts: dict[int, list[InputRecord]], events: int, dedup: bool) -> float:
    """Events per CPU-second of the batch path over every partition's records."""
    store_class = PartitionStore if dedup else NoDedupStore
    with tempfile.TemporaryDirectory(prefix="tokenops-dedup-cost-") as tmp:
        states = {
            p: partition_state(
                partition_store(Path(tmp) / str(p), store_class),
                decode=worker_decoder(None),
                partition=p,
                owner="bench",
                partitions=len(parts),
            )
            for p in parts
        }
        per_partition = BATCH_RECORDS // len(parts)
        longest = max(map(len, parts.values()))
        changelog_next = 1
        began = time.process_time()
        for at in range(0, longest, per_partition):
            now_ms = int(time.time() * 1000)
            for p, state in states.items():
                _, delta, _ = state.process(parts[p][at : at + per_partition], now_ms)
                if not dedup:
                    delta.dedup = {}
                delta.to_bytes()  # what the changelog record costs
                state.commit(delta, changelog_next)
                changelog_next += 1
        took = time.process_time() - began
        for state in states.values():
            state.store.close()
    return events / took


def main(events: int = 1_000_000, per_record: int = 100, tenants: int = 1_000) -> None:
    start_ms = int(time.time() * 1000) - 3_600_000
    parts: dict[int, list[InputRecord]] = {p: [] for p in range(4)}
    for tenant, value, _ in v2_records(events, per_record, tenants, start_ms):
        records = parts[home_partition(tenant, len(parts))]  # where the worker counts it
        key = tenant.encode()
        records.append(
            InputRecord(len(records), key, value, list(COLUMNS_HEADERS), start_ms + 3_600_000)
        )
    rounds: dict[bool, list[float]] = {True: [], False: []}
    for _ in range(3):
        for dedup in (True, False):
            rounds[dedup].append(run(parts, events, dedup))
    on, off = statistics.median(rounds[True]), statistics.median(rounds[False])
    print(
        f"{events:,} events, {per_record} per record, {tenants:,} tenants, batch path in "
        "process, events per CPU-second (median of 3 interleaved rounds):"
    )
    print(f"  dedup on (the worker):   {on:>10,.0f}  runs {[round(r) for r in rounds[True]]}")
    print(f"  dedup store off:         {off:>10,.0f}  runs {[round(r) for r in rounds[False]]}")
    print(f"  dedup costs {1 - on / off:.0%} of the batch path's throughput")


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:]))
