"""What every sink shares: the consume -> status -> batch -> write -> commit loop, and a
status with a reason for each record it does not keep.

`BatchingSink.run` collects records into a batch (each record gets a status: kept, or
skipped with a `Skip` reason), writes the batch, and commits the batch's offsets only
after the write returned, that is after it is durable. A sink fills in `collect`,
`write` and `commit`; a sink that keeps no offsets (the Prometheus sink rebuilds its
state from compacted topics) commits nothing.

`SkippedRecords` counts each skipped record in the sink's counter by topic role and
reason (both bounded: reasons are the constants below, never free text) and logs a
sample of each (role, reason) at most once per `log_every_s`, with how many it left out,
so a flood of bad records costs one log line per period, not one per record.
"""

from __future__ import annotations

import logging
import threading
import time
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Callable
from operator import itemgetter
from typing import Generic, NamedTuple, TypeVar

from prometheus_client import Counter as CounterMetric

# The reasons a sink skips a record: the `reason` label's whole value set.
UNREADABLE = "unreadable"  # not a record of its topic's contract (the worker dead-letters it)
NOT_HOME = "not_home_partition"  # outside its tenant's home partition (the worker forwards it)
REASONS = (UNREADABLE, NOT_HOME)

_SAMPLE_CHARS = 200  # a log sample's detail is cut here: records may be hostile and large


class Skip(NamedTuple):
    """Why one record was not kept, and a sample of what was wrong with it."""

    reason: str  # one of REASONS
    detail: str  # the decoder's message, for the log; never a label


class SkippedRecords:
    """Counts and logs skipped records: counter `{role, reason}`, rate-limited samples."""

    def __init__(
        self,
        counter: CounterMetric,
        logger: logging.Logger,
        log_every_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.counter, self.logger, self.log_every_s, self.clock = (
            counter,
            logger,
            log_every_s,
            clock,
        )
        self._logged_at: dict[tuple[str, str], float] = {}
        self._unlogged: dict[tuple[str, str], int] = {}

    def skipped(self, role: str, skips: list[Skip], where: str = "") -> None:
        """Count `skips` (records of topic `role`) and log a sample of each reason."""
        if not skips:
            return
        counts = Counter(map(itemgetter(0), skips))  # by reason, in C: floods are cheap
        for reason, n in counts.items():
            sample = skips[0] if len(counts) == 1 else next(s for s in skips if s[0] == reason)
            self.repeated(role, sample, n, where)

    def repeated(self, role: str, sample: Skip, count: int, where: str = "") -> None:
        """Count `count` records of topic `role` skipped for `sample`'s reason, and log
        `sample` if that reason's last log line is older than `log_every_s`. For a sink
        that skips many records for one reason without describing each."""
        self.counter.labels(role, sample.reason).inc(count)
        key = (role, sample.reason)
        now = self.clock()
        logged = self._logged_at.get(key)
        if logged is not None and now - logged < self.log_every_s:
            self._unlogged[key] = self._unlogged.get(key, 0) + count
            return
        self._logged_at[key] = now
        self.logger.warning(
            "skipped record role=%s reason=%s%s not_logged_since=%d: %s",
            role,
            sample.reason,
            where,
            self._unlogged.pop(key, 0),
            " ".join(sample.detail[: 2 * _SAMPLE_CHARS].split())[:_SAMPLE_CHARS],  # one line
        )
        if count > 1:  # the others of this call, in the next line's count
            self._unlogged[key] = count - 1


Batch = TypeVar("Batch")
Positions = TypeVar("Positions")


class BatchingSink(ABC, Generic[Batch, Positions]):
    """The loop: `collect` a batch, `write` it, `commit` its positions once it is durable.

    Subclasses keep the batch in hand and hand it over in `take`; `run` returns when
    `stop` is set, after `close`.
    """

    def __init__(self, stop: threading.Event | None = None) -> None:
        self.stop = stop or threading.Event()

    def run(self) -> None:
        try:
            self.start()
            while not self.stop.is_set():
                self.collect()
                self.flush_pending()
        finally:
            self.close()

    def flush_pending(self) -> None:
        """Write the batch in hand; commit its positions only if the write returned True."""
        batch, positions = self.take()
        if self.write(batch) and positions:
            self.commit(positions)

    def start(self) -> None:
        """Subscribe or assign; called once, before the first `collect`."""

    @abstractmethod
    def collect(self) -> None:
        """Consume records into the batch in hand until it is due; each record kept or
        skipped with a reason."""

    @abstractmethod
    def take(self) -> tuple[Batch, Positions]:
        """The batch in hand and the positions after it; the sink starts a new batch."""

    @abstractmethod
    def write(self, batch: Batch) -> bool:
        """Make `batch` durable (retrying as the sink sees fit); False if stopped first."""

    def commit(self, positions: Positions) -> None:
        """Called after `write` returned True for the batch these positions end."""

    def close(self) -> None:
        """Release the consumer and anything else `run` opened; called once at the end."""
