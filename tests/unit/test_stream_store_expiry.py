"""The store forgets what is older than the dedup horizon: the dedup keys of expired
buckets and the closed windows that ended before it, with range deletes that are issued
only when a range moved (range tombstones slow every later read of the memtable)."""

from __future__ import annotations

from pathlib import Path

from tests.harness.partition import partition_store
from tokenops.streams.state.delta import StateDelta
from tokenops.streams.state.store import PartitionStore

HOUR, MINUTE = 3_600_000, 60_000  # the harness store's bucket and window
T0 = 10 * HOUR
TOTALS = [1, 2, 0, 0, 0, 1, T0, T0, 1]


def _apply(store: PartitionStore, n: int, expire_before_ms: int, **more: object) -> None:
    delta = StateDelta("me", n, n + 1, expire_before_ms=expire_before_ms, **more)  # type: ignore[arg-type]
    store.apply(delta, n + 1, "me")


def _memtable_entries(store: PartitionStore) -> int:
    entries = store.db.property_int_value("rocksdb.num-entries-active-mem-table")
    assert entries is not None
    return entries


def test_expired_dedup_keys_and_closed_windows_are_deleted(tmp_path: Path) -> None:
    store = partition_store(tmp_path / "s")
    _apply(store, 0, 0, dedup={T0 // HOUR: "src\x00a\nsrc\x00b"},
           closed=[("t1", "m", "", T0, TOTALS)])  # fmt: skip
    _apply(store, 1, T0 + MINUTE // 2)  # the bucket and the window are not over yet
    assert store.seen(["src\x00a", "src\x00b"]) == [True, True]
    assert store.closed_window(("t1", "m", "", T0)) == TOTALS
    _apply(store, 2, T0 + HOUR)  # bucket 10 ended at the bound
    assert store.seen(["src\x00a", "src\x00b", "src\x00c"]) == [False, False, False]
    assert store.closed_window(("t1", "m", "", T0)) is None


def test_a_window_written_below_the_deleted_range_goes_with_the_next_batch(
    tmp_path: Path,
) -> None:
    store = partition_store(tmp_path / "s")
    _apply(store, 0, T0 + 5 * MINUTE)  # windows starting at or before T0 + 4 min expire
    _apply(store, 1, T0 + 5 * MINUTE + 1, closed=[("t1", "m", "", T0 + 3 * MINUTE, TOTALS)])
    assert store.closed_window(("t1", "m", "", T0 + 3 * MINUTE)) is None


def test_a_range_that_did_not_move_is_not_deleted_again(tmp_path: Path) -> None:
    store = partition_store(tmp_path / "s")
    _apply(store, 0, T0 + 5 * MINUTE)
    before = _memtable_entries(store)
    _apply(store, 1, T0 + 5 * MINUTE + 10_000)  # same bucket, same last expired window
    assert _memtable_entries(store) - before == 1  # the meta record, no range tombstone
    _apply(store, 2, T0 + 6 * MINUTE)  # one more window expired: its range only
    assert _memtable_entries(store) - before == 3
