"""`delay_for_one_day`: a run whose events must fall in one UTC day waits only when
it would straddle midnight, and just long enough."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tokenops.demo.day import DAY_S, delay_for_one_day, wait_for_one_day

MIDNIGHT = 1_795_737_600.0  # 2026-11-28T00:00:00Z


def test_a_run_well_inside_the_day_starts_at_once() -> None:
    assert delay_for_one_day(MIDNIGHT + 12 * 3600, 70, 480) == 0


def test_a_run_that_would_pass_midnight_waits_for_it_and_the_late_events() -> None:
    assert delay_for_one_day(MIDNIGHT - 100, 70, 480) == 100 + 70


def test_just_after_midnight_the_late_events_would_be_yesterdays() -> None:
    assert delay_for_one_day(MIDNIGHT + 30, 70, 480) == 40


def test_a_span_of_a_day_is_refused() -> None:
    with pytest.raises(ValueError, match="cannot fit a day"):
        delay_for_one_day(MIDNIGHT, DAY_S / 2, DAY_S / 2)


@given(
    st.floats(MIDNIGHT - 3 * DAY_S, MIDNIGHT + 3 * DAY_S),
    st.floats(0, 3600),
    st.floats(0, 3600),
)
def test_after_the_delay_the_span_lies_in_one_day(now: float, before: float, after: float) -> None:
    delay = delay_for_one_day(now, before, after)
    start = now + delay
    assert 0 <= delay <= before + after + 1e-6
    assert (start - before) // DAY_S == (start + after) // DAY_S or (
        delay == 0 and ((now - before) // DAY_S == (now + after) // DAY_S)
    )
    assert delay_for_one_day(start, before, after) == pytest.approx(0, abs=1e-6)


def test_wait_sleeps_the_delay() -> None:
    slept: list[float] = []
    assert wait_for_one_day(70, 480, clock=lambda: MIDNIGHT - 100, sleep=slept.append) == 170
    assert slept == [170]
    assert wait_for_one_day(70, 480, clock=lambda: MIDNIGHT + 600, sleep=slept.append) == 0
    assert slept == [170]
