"""The text of the "Foreign producer" section: one `python -m bench foreign` run's tables,
each row's median with its ratio to raw (a), to Kafka Streams (b) and, in catch-up, to the
aiokafka floor (c) of the same run, and issue 15's acceptance targets beside the measured
figures."""

from __future__ import annotations

from typing import Any

from bench.aiokafka_floor import AIOKAFKA
from bench.foreign import DEFAULT, PIPELINE, WORKER
from bench.pipeline_analysis import RAW, STREAMS, med
from bench.pipeline_report import spread, table

HEADING = "## Foreign producer"
HEADER = ["consumer", "events/s", "/ raw (a)", "/ Kafka Streams (b)"]
CATCHUP_HEADER = [*HEADER, "/ aiokafka floor (c)"]


def ratio(rows: dict[str, list[float]], label: str, base: str) -> float:
    """Median of `label` over median of `base`; NaN when either has no accepted run."""
    return med(rows.get(label)) / med(rows.get(base)) if rows.get(base) else float("nan")


def _rows(
    rows: dict[str, list[float]],
    offered: dict[str, list[float]] | None = None,
    floor: bool = False,  # a column of ratios to the aiokafka floor (c)
) -> list[list[str]]:
    return [
        [label, spread(values), f"{ratio(rows, label, RAW):.2f}",
         f"{ratio(rows, label, STREAMS):.2f}" if rows.get(STREAMS) else "not run"]
        + ([f"{ratio(rows, label, AIOKAFKA):.2f}" if rows.get(AIOKAFKA) else "not run"]
           if floor else [])
        + ([spread(offered.get(label, []))] if offered is not None else [])
        for label, values in rows.items()
    ]  # fmt: skip


def targets(r: dict[str, Any]) -> list[list[str]]:
    """Issue 15's acceptance rows: target, measured, met or missed (NaN is missed); the
    catch-up targets once per partitioner."""
    checks: list[tuple[str, float, float, str]] = []
    for label, rows in r["catchup"].items():
        checks += [
            (f"one CloudEvent per record, {label}, catch-up: worker >= 0.5 x raw (a)",
             ratio(rows, WORKER, RAW), 0.5, "{:.2f} x"),
            (f"one CloudEvent per record, {label}, catch-up: worker >= 1.0 x Kafka "
             "Streams (b)", ratio(rows, WORKER, STREAMS), 1.0, "{:.2f} x"),
        ]  # fmt: skip
    checks += [
        (f"one CloudEvent per record, {DEFAULT}, live: worker + ClickHouse sink >= "
         "60,000 events/s", med(r["live"].get(PIPELINE)), 60_000, "{:,.0f} events/s"),
        ("SDK v2 batches, catch-up: worker >= 0.3 x raw (a)",
         ratio(r["v2"], WORKER, RAW), 0.3, "{:.2f} x"),
    ]  # fmt: skip
    return [[name, fmt.format(got), "met" if got >= goal else "**missed**"]
            for name, got, goal, fmt in checks]  # fmt: skip


def floor_notes(r: dict[str, Any]) -> list[str]:
    """What the fixed stack allows, per partitioner: the aiokafka floor (c) against raw
    (a), so the 0.5 x raw target reads as a share of the floor."""
    notes = []
    for label, rows in r["catchup"].items():
        floor = ratio(rows, AIOKAFKA, RAW)
        if floor == floor:  # not NaN: both ran
            notes.append(
                f"Catch-up, {label}: the aiokafka floor (c) is {floor:.2f} x raw (a), so "
                f"0.5 x raw is {0.5 / floor:.2f} x what the worker's client allows with no "
                f"work at all; the worker is at {ratio(rows, WORKER, AIOKAFKA):.2f} x (c)."
            )
    return notes


def render(r: dict[str, Any], machine: dict[str, str], when: str) -> str:
    cfg = r["config"]
    parts = [
        f"`python -m bench foreign` (also part of `make bench`), {when}: each figure is the "
        f"median of {cfg['runs']} run{'s' if cfg['runs'] > 1 else ''} within this one "
        f"invocation, with the spread (min to max). Machine: {machine['cores']} cores "
        f"({machine['cpu']}), load average {machine['load']} at the start and "
        f"{machine.get('load_after', '?')} at the end. **Noise:** 2 shared cores; other "
        "processes (other test suites, other benchmarks) ran beside this run, so absolute "
        "figures move by tens of percent from run to run. The ratios compare consumers "
        "measured on the same load within this run, minutes apart, and are the figures to "
        "quote; the load generator itself shares the cores in the live runs.",
        "Load: one CloudEvent per record (structured mode, header `content-type: "
        "application/cloudevents+json`, key = tenant), what kcat or a Java or Go gateway "
        "writes, from plain confluent-kafka with idempotence on, produced only once every "
        f"partition has a leader; {cfg['tenants']:,} tenants, 3 models, 4 partitions, "
        "every event a unique id. With librdkafka's default partitioner (consistent_random, "
        "CRC32 of the key) most tenants land outside their home partition and the worker "
        "forwards their records there (docs/streams.md, Home partition); with "
        "murmur2_random they land at home.",
        "(a) is the raw confluent-kafka consumer: `consume(10000)`, orjson and a sum per "
        "tenant, model and minute, no validation, dedup or durability. (b) is "
        "`bench/baselines/kafka-streams` (Kafka Streams 4.1.1), tuned as its docs advise: "
        "`statestore.cache.max.bytes` 64 MiB, `commit.interval.ms` 30000, "
        f"`num.stream.threads` = {machine['cores']} (the cores). Every baseline run has a "
        "time-out (300 s); a run that times out or whose totals disagree with the load's "
        "ledger is listed below, not averaged. Kafka Streams' window totals, read back "
        f"from its store once and compared with the ledger: **{r['ledger']}**.",
        "(c) is the aiokafka floor (`bench/aiokafka_floor.py`): the worker must consume "
        "through faust-streaming, hence aiokafka, a pure-Python client that builds a "
        "`ConsumerRecord` per record; (c) is an `AIOKafkaConsumer` tuned as aiokafka's docs "
        "advise (`getmany` of up to 10,000 records, `fetch_max_bytes` 64 MiB, "
        "`max_partition_fetch_bytes` 16 MiB, auto-commit off, CRCs checked as the worker "
        "does) doing (a)'s orjson and sum: what the fixed stack allows before tokenops "
        "validates, deduplicates or makes anything durable.",
    ]
    for label, rows in r["catchup"].items():
        parts.append(
            f"**Catch-up, {label}** ({cfg['events']:,} events over ten 1-minute windows, "
            "a fresh topic per run, read from the start by each consumer in turn, from its first "
            "event to its last):"
        )
        parts.append(table(CATCHUP_HEADER, _rows(rows, floor=True)))
    parts.append(
        f"**Live, end to end, {DEFAULT}** (each consumer running first, its partitions "
        f"assigned; then {cfg['live_events']:,} events sent with live event times as fast "
        "as the load can, on a fresh topic per run; events/s from the first send until the "
        "last event is summed, for the worker + sink until the sink stored the last raw "
        "event. The sink's /healthz does not say it is assigned, so 1,000 events go "
        "through worker and sink before the measured part. A row close to the load's own "
        "rate (last column) is limited by the load, not by the consumer):"
    )
    parts.append(table([*HEADER, "load offered, events/s"], _rows(r["live"], r["offered"])))
    parts.append(
        f"**SDK v2 batches, catch-up** ({cfg['v2_events']:,} events, 100 per record, the "
        "bytes `encode_columns` writes, murmur2_random):"
    )
    parts.append(table(HEADER, _rows(r["v2"])))
    parts.append("**Acceptance targets of issue 15** (medians of this run):")
    parts.append(table(["target", "measured", ""], targets(r)))
    parts += floor_notes(r)
    if r["rejected"]:
        parts.append("Runs reported, not averaged: " + "; ".join(r["rejected"]) + ".")
    return "\n\n".join(parts)
