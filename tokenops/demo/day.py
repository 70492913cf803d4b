"""Runs whose event times must fall in one UTC day: daily and monthly quotas restart at
00:00 UTC.

The demo and the end-to-end tests compare the quota alerts of a run with its whole
ledger. A run whose event times straddle midnight UTC splits a tenant's usage between
two days (or months), and the alerts the ledger predicts no longer hold. Such a run
waits, before it starts, until all of it fits in one day: at most `before_s + after_s`
seconds, a few minutes a day.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

logger = logging.getLogger(__name__)

DAY_S = 86_400


def delay_for_one_day(now_s: float, before_s: float, after_s: float) -> float:
    """Seconds to wait from `now_s` (epoch seconds) until [t - before_s, t + after_s]
    lies in one UTC day: events up to `before_s` old (late ones) and `after_s` ahead."""
    if before_s < 0 or after_s < 0 or before_s + after_s >= DAY_S:
        raise ValueError(f"a span of {before_s} s before and {after_s} s after cannot fit a day")
    day_start = now_s - now_s % DAY_S
    if now_s - before_s < day_start:  # just after midnight: the earliest events are yesterday's
        return day_start + before_s - now_s
    if now_s + after_s >= day_start + DAY_S:  # the run would pass midnight
        return day_start + DAY_S + before_s - now_s
    return 0.0


def wait_for_one_day(
    before_s: float,
    after_s: float,
    *,
    clock: Callable[[], float] = time.time,
    sleep: Callable[[float], None] = time.sleep,
) -> float:
    """Wait, if needed, so the run's event times fall in one UTC day; returns the wait."""
    delay = delay_for_one_day(clock(), before_s, after_s)
    if delay > 0:
        logger.warning(
            "waiting %.0f s for the UTC day to turn: daily quotas would split this run", delay
        )
        sleep(delay)
    return delay
