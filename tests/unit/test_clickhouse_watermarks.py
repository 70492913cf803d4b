"""The sink's partition watermarks: the worker's rule, capped by the wall clock."""

from __future__ import annotations

from tokenops.sinks.clickhouse.rows import EVENT_COLUMNS
from tokenops.sinks.clickhouse.watermarks import WatermarkTracker

NOW_S = 1_800_000_000.0


def _events(*pairs: tuple[int, int]) -> list[list[object]]:
    columns: list[list[object]] = [[] for _ in EVENT_COLUMNS]
    for time_ms, partition in pairs:
        columns[EVENT_COLUMNS.index("time")].append(time_ms)
        columns[EVENT_COLUMNS.index("kafka_partition")].append(partition)
    return columns


def _tracker(mono: list[float]) -> WatermarkTracker:
    return WatermarkTracker(30, 60, clock=lambda: NOW_S, monotonic=lambda: mono[0])


def test_highest_event_time_minus_lateness_never_back_and_capped_at_the_clock() -> None:
    tracker = _tracker([0.0])
    now_ms = int(NOW_S * 1000)
    tracker.observe(_events((now_ms - 100_000, 0), (now_ms - 50_000, 0), (now_ms - 90_000, 1)))
    assert tracker.marks == {0: now_ms - 80_000, 1: now_ms - 120_000}
    tracker.observe(_events((now_ms - 500_000, 0)))  # an older event: never back
    assert tracker.marks[0] == now_ms - 80_000
    # a hostile producer's timestamp a year ahead: the watermark stops at the wall clock
    tracker.observe(_events((now_ms + 365 * 86_400_000, 1)))
    assert tracker.marks[1] == now_ms - 30_000
    rows = tracker.rows(3)
    assert [(r[0], r[1]) for r in rows] == [(0, 3), (1, 3), (2, 3)]
    assert rows[2][2].timestamp() == 0  # no watermark yet: as_of stays unknown
    assert tracker.rows(3) == []  # nothing moved since


def test_an_idle_partition_advances_to_now_minus_lateness() -> None:
    mono = [0.0]
    tracker = _tracker(mono)
    tracker.assigned([0, 1])
    mono[0] = 30.0
    tracker.saw([0])
    mono[0] = 61.0
    tracker.idle_advance()
    assert tracker.marks == {1: int(NOW_S * 1000) - 30_000}  # 0 had a record 31 s ago
    tracker.resumed()  # after a blocked write nothing counts as idle
    mono[0] = 100.0
    tracker.idle_advance()
    assert 0 not in tracker.marks
