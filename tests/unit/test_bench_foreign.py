"""The foreign-producer benchmark's pure logic: the ledger check that decides whether a
Kafka Streams run is averaged, and the acceptance rows of issue 15."""

from __future__ import annotations

from datetime import UTC, datetime

from bench.aiokafka_floor import AIOKAFKA
from bench.foreign import DEFAULT, PIPELINE, WORKER
from bench.foreign_markdown import floor_notes, targets
from bench.pipeline_analysis import RAW, STREAMS
from bench.pipeline_baselines import Drained, ledger_mismatches
from tokenops.simulate.ledger import Ledger

MINUTE = datetime(2026, 12, 3, 8, 0, tzinfo=UTC)
START_MS = int(MINUTE.timestamp() * 1000)


def _ledger() -> Ledger:
    ledger = Ledger()
    for _ in range(3):
        ledger.count_fields(
            {"tenant_id": "t1", "model": "m", "time": MINUTE, "input_tokens": 4,
             "output_tokens": 1, "cache_read_input_tokens": 2}
        )  # fmt: skip
    return ledger


def test_matching_totals_pass_and_a_lost_event_is_named() -> None:
    assert ledger_mismatches(_ledger(), [["t1", "m", START_MS, 12, 3, 6, 0, 0, 3]]) == []
    (wrong,) = ledger_mismatches(_ledger(), [["t1", "m", START_MS, 8, 2, 4, 0, 0, 2]])
    assert "t1" in wrong and "expected [12, 3, 6, 0, 0, 3]" in wrong
    extra = ledger_mismatches(_ledger(), [["t1", "m", START_MS, 12, 3, 6, 0, 0, 3],
                                          ["t2", "m", START_MS, 1, 0, 0, 0, 0, 1]])  # fmt: skip
    assert len(extra) == 1 and "t2" in extra[0]


def test_a_run_short_of_its_events_timed_out() -> None:
    assert Drained(1.0, 3.0, 99, 100).timed_out
    done = Drained(1.0, 3.0, 100, 100)
    assert not done.timed_out and done.rate == 50.0


def test_targets_compare_medians_and_a_missing_baseline_is_missed() -> None:
    results = {
        "catchup": {DEFAULT: {RAW: [100.0, 120.0, 110.0], STREAMS: [40.0], WORKER: [60.0]}},
        "live": {PIPELINE: [50_000.0, 70_000.0, 65_000.0]},
        "v2": {WORKER: [10.0]},  # no accepted raw run
    }
    rows = targets(results)
    assert [verdict for _, _, verdict in rows] == ["met", "met", "met", "**missed**"]
    assert [got for _, got, _ in rows][:3] == ["0.55 x", "1.50 x", "65,000 events/s"]


def test_the_aiokafka_floor_reads_as_a_share_of_raw() -> None:
    results = {"catchup": {DEFAULT: {RAW: [200.0], AIOKAFKA: [100.0], WORKER: [40.0]}}}
    (note,) = floor_notes(results)
    assert "(c) is 0.50 x raw (a)" in note and "1.00 x what" in note and "0.40 x (c)" in note
    assert floor_notes({"catchup": {DEFAULT: {RAW: [200.0], WORKER: [40.0]}}}) == []
