"""Central ingest of replicated traffic (issue 20): `python -m bench --only regions`.

Each run starts west's cluster and MirrorMaker 2 with the stack's own code
(`tokenops.stack.regions.RegionalStack`, what `tokenops stack up --regions west,central`
and tests/e2e/test_regions.py run) beside the bench's broker, which is central. West's
fleet writes `events` CloudEvents (one per record, a foreign producer's format); MM2
copies them into central's usage topic. Then a fresh central `tokenops worker` catches
up that replicated topic, and another one the same number of events produced directly in
central: the two rates side by side, in the same run, on the same broker. MirrorMaker's
own rate is reported too: events/s from the first west send until central holds them
all (the send itself is a fraction of that time).
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any

from bench import pipeline_runs as runs
from bench.pipeline_env import end_offsets, new_topics
from bench.pipeline_report import spread, table
from tokenops.settings import KafkaSettings, StackSettings, TopicSettings
from tokenops.stack.process import free_port
from tokenops.stack.regions import RegionalStack

HEADING = "## Regions"
QUICK = dict(runs=1, events=50_000, tenants=1_000)
FULL = dict(runs=3, events=50_000, tenants=1_000)
DIRECT, REPLICATED = "produced in central", "replicated from west by MM2"


def fill_events(kafka: KafkaSettings, topic: str, events: int, tenants: int) -> None:
    runs.fill(kafka, topic, events, tenants, 1, wire="event")


def replicate(kafka: KafkaSettings, usage: str, work: Path, events: int, tenants: int) -> float:
    """West's fleet sends `events` to its `usage` topic, MirrorMaker copies them into
    central's; returns MirrorMaker's events/s. West and MM2 are stopped afterwards."""
    settings = StackSettings(
        state_dir=work,
        kafka_port=free_port(),
        kafka_controller_port=free_port(),
        kafka_heap_mb=512,
    )
    work.mkdir(parents=True)
    regional = RegionalStack(
        settings, ["west", "central"], kafka.bootstrap_servers, TopicSettings(usage=usage)
    )
    try:
        regional.up()
        t0 = time.perf_counter()
        fill_events(regional.kafka_settings("west"), usage, events, tenants)
        sent_s = time.perf_counter() - t0
        deadline = time.monotonic() + 600
        while end_offsets(kafka, usage) < events:
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"MirrorMaker replicated too little:\n{regional.mirror.log_tail()}"
                )
            time.sleep(0.2)
        rate = events / (time.perf_counter() - t0)
        print(f"  MM2: {rate:,.0f} events/s (west's send took {sent_s:.1f} s)", flush=True)
        return rate
    finally:
        regional.down()


def measure(kafka: KafkaSettings, work: Path, cfg: dict[str, Any]) -> dict[str, Any]:
    events, tenants = cfg["events"], cfg["tenants"]
    rates: dict[str, list[float]] = {DIRECT: [], REPLICATED: []}
    mm2: list[float] = []
    for i in range(cfg["runs"]):
        # A topic set per run: the worker forwards records to their home partition, so
        # a second run on the same topic would read those copies too.
        replicated = new_topics(kafka)
        mm2.append(replicate(kafka, replicated.usage, work / f"regions-{i}", events, tenants))
        direct = new_topics(kafka)
        fill_events(kafka, direct.usage, events, tenants)
        for label, topics in ((REPLICATED, replicated), (DIRECT, direct)):
            got = runs.worker_catchup(kafka, topics, work, events).rate
            rates[label].append(got)
            print(f"  worker catch-up, {label}: {got:,.0f} events/s", flush=True)
    return {"events": events, "runs": cfg["runs"], "worker": rates, "mm2": mm2}


def render(result: dict[str, Any], machine: dict[str, str], when: str) -> str:
    worker = result["worker"]
    # Each run's two workers ran minutes apart on the same load: their ratio is the figure.
    ratios = [r / d for r, d in zip(worker[REPLICATED], worker[DIRECT], strict=True) if d]
    per_run = ", ".join(f"{r:.2f}" for r in ratios)
    lines = [
        f"`python -m bench --only regions` ({when}; {result['events']:,} events, one"
        f" CloudEvent per record, 1,000 tenants; {result['runs']} run(s), each with its own"
        f" topics, west cluster and MM2; {machine.get('cores')} cores, load"
        f" {machine.get('load')} before and {machine.get('load_after', '?')} after: other"
        " processes may share the machine, so absolute rates can move by"
        " tens of percent between runs; compare within a run).",
        "",
        "Central `tokenops worker` catch-up (a fresh worker reads the filled topic from the"
        " start), median (min to max):",
        "",
        table(
            ["central usage topic", "worker events/s"],
            [[DIRECT, spread(worker[DIRECT])], [REPLICATED, spread(worker[REPLICATED])]],
        ),
        "",
        f"Replicated / produced in central, per run: {per_run} (median"
        f" {statistics.median(ratios) if ratios else 0:.2f}). MirrorMaker keeps each record's"
        " partition, key, value and headers (docs/deploy.md), so the worker does the same"
        " work on either topic; only the record batches differ.",
        "",
        f"MirrorMaker 2 (dedicated mode, one task, one topic of 4 partitions):"
        f" {spread(result['mm2'])} events/s from west's first send until central held"
        " every record (west's own send, a few seconds, included).",
    ]
    return "\n".join(lines)
