"""`SkippedRecords`: every skipped record counted under its reason, one log line per
reason and period, naming how many records it left out since the last."""

from __future__ import annotations

import logging

import pytest
from prometheus_client import CollectorRegistry, Counter

from tokenops.sinks.base import NOT_HOME, UNREADABLE, Skip, SkippedRecords


def test_a_flood_is_counted_whole_and_logged_once_per_period(
    caplog: pytest.LogCaptureFixture,
) -> None:
    registry = CollectorRegistry()
    counter = Counter("skipped", "", ["role", "reason"], registry=registry)
    now = [0.0]
    skipped = SkippedRecords(counter, logging.getLogger("test.skips"), 10.0, lambda: now[0])
    caplog.set_level(logging.WARNING, logger="test.skips")

    skipped.skipped("usage", [Skip(UNREADABLE, "first"), Skip(NOT_HOME, "away"),
                              Skip(UNREADABLE, "second")])  # fmt: skip
    skipped.repeated("usage", Skip(NOT_HOME, "many away"), 1_000)
    now[0] = 11.0
    skipped.repeated("usage", Skip(NOT_HOME, "later"), 5)

    def count(reason: str) -> float | None:
        labels = {"role": "usage", "reason": reason}
        return registry.get_sample_value("skipped_total", labels)

    assert count(UNREADABLE) == 2
    assert count(NOT_HOME) == 1_006
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 3  # unreadable once, not home twice (two periods)
    assert lines[0].endswith("not_logged_since=0: first")
    assert lines[1].endswith("not_logged_since=0: away")
    assert lines[2].endswith("not_logged_since=1000: later")  # the flood's, then 4 left out
