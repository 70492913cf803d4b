"""The sink's view of each usage partition's watermark, for `as_of` (see finality.py).

The same rule as the worker's (docs/streams.md "Watermark"): the highest event time
stored from the partition minus `allowed_lateness_s`, never going back; a partition
without records for `idle_timeout_s` of wall clock advances to `now - allowed_lateness_s`.
Event times are capped at the sink's wall clock, so a producer's far-future timestamp
(which the worker dead-letters) cannot make a month look closed.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import cast

from tokenops.sinks.clickhouse.rows import EVENT_COLUMNS

_TIME, _PARTITION = EVENT_COLUMNS.index("time"), EVENT_COLUMNS.index("kafka_partition")
WATERMARK_COLUMNS = ["partition", "partitions", "watermark"]


class WatermarkTracker:
    def __init__(
        self,
        lateness_s: float,
        idle_timeout_s: float,
        *,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.lateness_ms = int(lateness_s * 1000)
        self.idle_timeout_s = idle_timeout_s
        self.clock, self.monotonic = clock, monotonic
        self.marks: dict[int, int] = {}
        self.last_record: dict[int, float] = {}  # assigned partitions -> monotonic time
        self.changed = False

    def assigned(self, partitions: Iterable[int]) -> None:
        now = self.monotonic()
        self.last_record = dict.fromkeys(partitions, now)

    def saw(self, partitions: Iterable[int]) -> None:
        now = self.monotonic()
        for partition in partitions:
            self.last_record[partition] = now

    def resumed(self) -> None:
        """After a stall (a blocked write): nobody was reading, so nothing was idle."""
        self.assigned(list(self.last_record))

    def observe(self, events: list[list[object]]) -> None:
        """Advance by the events of one batch (raw_events columns)."""
        if not events[_TIME]:
            return
        cap = int(self.clock() * 1000)
        top: dict[int, int] = {}
        times = cast("list[int]", events[_TIME])
        partitions = cast("list[int]", events[_PARTITION])
        for moment, partition in zip(times, partitions, strict=True):
            if top.get(partition, -1) < moment:
                top[partition] = moment
        for partition, moment in top.items():
            self._advance(partition, min(moment, cap) - self.lateness_ms)

    def idle_advance(self) -> None:
        now, wall = self.monotonic(), int(self.clock() * 1000)
        for partition, seen in self.last_record.items():
            if now - seen >= self.idle_timeout_s:
                self._advance(partition, wall - self.lateness_ms)

    def _advance(self, partition: int, mark_ms: int) -> None:
        if mark_ms > self.marks.get(partition, 0):
            self.marks[partition] = mark_ms
            self.changed = True

    def rows(self, partitions: int) -> list[list[object]]:
        """One row per partition of the topic (the epoch for one without a watermark yet),
        and forget the change; empty when nothing moved."""
        if not self.changed:
            return []
        self.changed = False
        return [
            [p, partitions, datetime.fromtimestamp(self.marks.get(p, 0) / 1000, UTC)]
            for p in range(partitions)
        ]
