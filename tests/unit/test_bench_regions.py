"""The regions benchmark reports each run's replicated / direct ratio, not a ratio of
medians taken from different runs (the machine's load moves between runs)."""

from __future__ import annotations

from bench.bench_regions import DIRECT, REPLICATED, render


def test_ratios_pair_the_workers_of_one_run() -> None:
    result = {
        "events": 50_000,
        "runs": 3,
        "worker": {
            DIRECT: [10_000.0, 40_000.0, 20_000.0],
            REPLICATED: [5_000.0, 44_000.0, 18_000.0],
        },
        "mm2": [3_000.0, 2_000.0, 4_000.0],
    }
    text = render(result, {"cores": "2", "load": "1.0", "load_after": "2.0"}, "now")
    assert "per run: 0.50, 1.10, 0.90 (median 0.90)" in text
    assert f"| {DIRECT} | 20,000 (10,000 to 40,000, 3 runs) |" in text
    assert "3,000 (2,000 to 4,000, 3 runs) events/s" in text
