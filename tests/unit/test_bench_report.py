"""The bench harness rewrites only its own section of docs/benchmarks.md."""

from __future__ import annotations

from pathlib import Path

from bench.pipeline_report import NOTES, percentile, spread, write_section

DOC = """# Benchmarks

Intro.

## Producer

producer figures

## Pipeline

old figures

### Throughput

old table

## Quota alerting

quota figures
"""


def test_replaces_only_the_pipeline_section(tmp_path: Path) -> None:
    path = tmp_path / "benchmarks.md"
    path.write_text(DOC)
    write_section("new figures\n\n### Freshness\n\nnew table", path)
    text = path.read_text()
    assert "old figures" not in text and "old table" not in text
    assert "## Producer\n\nproducer figures\n\n## Pipeline\n\nnew figures" in text
    assert text.endswith("new table\n\n## Quota alerting\n\nquota figures\n")


def test_a_missing_section_goes_before_the_first_other_section(tmp_path: Path) -> None:
    path = tmp_path / "benchmarks.md"
    path.write_text("# Benchmarks\n\nIntro.\n\n## Producer\n\nfigures\n")
    write_section("pipeline figures", path)
    assert path.read_text() == (
        "# Benchmarks\n\nIntro.\n\n## Pipeline\n\npipeline figures\n\n## Producer\n\nfigures\n"
    )
    write_section("again", path)  # idempotent: still one section
    assert path.read_text().count("## Pipeline") == 1


def test_hand_written_notes_survive_a_rewrite(tmp_path: Path) -> None:
    path = tmp_path / "benchmarks.md"
    path.write_text(
        f"# Benchmarks\n\n## Pipeline\n\nold figures\n\n{NOTES}\n\nA/B of 12:00.\n\n"
        "## Producer\n\nfigures\n"
    )
    write_section("new figures", path)
    assert path.read_text() == (
        f"# Benchmarks\n\n## Pipeline\n\nnew figures\n\n{NOTES}\n\nA/B of 12:00.\n\n"
        "## Producer\n\nfigures\n"
    )


def test_spread_and_percentile() -> None:
    assert spread([3.0, 1.0, 2.0]) == "2 (1 to 3, 3 runs)"
    assert spread([1500.0], " MiB") == "1,500 MiB (1 run)"
    assert spread([]) == "n/a"
    assert percentile([float(i) for i in range(1, 101)], 99) == 99.0
    assert percentile([0.4], 99) == 0.4


def test_render_reports_partial_runs_and_failed_phases() -> None:
    from bench.pipeline_markdown import render

    results = {
        "when": "2026-11-27 09:00 UTC",
        "mode": "quick",
        "config": {"events": 1000, "step_s": 8, "scale_events": 1000},
        "machine": {
            "cores": "2",
            "cpu": "x",
            "load": "9.0 9.0 9.0",
            "python": "3.11",
            "tokenops": "0",
            "faust-streaming": "0",
            "confluent-kafka": "0",
            "chdb": "0",
            "kafka": "4.1.1",
            "java": "17",
        },
        "freshness": {"clickhouse": [0.5, 2.5], "quota_record": [0.1], "alertmanager": [9.0]},
        "errors": {"ramp": "RuntimeError: broker gone"},
    }
    text = render(results)
    assert "**the machine was busy**" in text
    assert "| window close -> ClickHouse < 2 s p99 | 2.50 s | **missed** |" in text
    assert "ramp: `RuntimeError: broker gone`" in text
    assert "### Throughput" not in text


def test_profile_summary_from_py_spy_raw_output() -> None:
    from bench.pipeline_profile import Profile, _summarise

    raw = (
        "_run (a/site-packages/faust/x.py:1);process (/work/main/streams/partition.py:9) 3\n"
        "_run (a/site-packages/faust/x.py:1);seen (/work/main/streams/state/store.py:77) 1\n"
    )
    profile = Profile()
    _summarise(raw, profile)
    assert profile.samples == 4
    assert dict(profile.inclusive)["streams.partition:process"] == 0.75
    assert profile.leaves[0] == ("streams.partition:process", 0.75)
