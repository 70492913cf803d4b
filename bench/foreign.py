"""`python -m bench foreign`: the "Foreign producer" section (issue 15).

One CloudEvent per record, written by plain confluent-kafka (idempotence on, produced
only once every partition has a leader) with librdkafka's default partitioner
(consistent_random) and with murmur2_random. On each topic, in turn and in the same run:
(a) the raw confluent-kafka + orjson + sum consumer, (b) the tuned Kafka Streams
reference, (c) the aiokafka floor (the worker's own client doing (a)'s work,
`aiokafka_floor.py`) and `tokenops worker`, each reading from the start (catch-up); then live end
to end (the consumer running first, the load sent with live event times, timed from the
first send to the last event stored); then the SDK's v2 batches, worker against (a).

Kafka Streams' totals are checked once against the load's ledger. A baseline run that
timed out or disagrees with the ledger is listed under `rejected`, not averaged.
"""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import pipeline_baselines as baselines
from bench import pipeline_runs as runs
from bench.aiokafka_floor import AIOKAFKA, aiokafka_consume
from bench.pipeline_analysis import RAW, STREAMS
from bench.pipeline_baselines import Drained, StreamsApp
from bench.pipeline_env import new_topics
from bench.pipeline_load import BatchLoad
from tokenops.settings import KafkaSettings
from tokenops.simulate.ledger import Ledger

FULL = dict(runs=3, events=120_000, live_events=60_000, v2_events=300_000, tenants=1_000)
QUICK = dict(runs=1, events=50_000, live_events=40_000, v2_events=100_000, tenants=1_000)
DEFAULT = "consistent_random (librdkafka default)"
PARTITIONERS: dict[str, str | None] = {DEFAULT: None, "murmur2_random": "murmur2_random"}
WORKER = "tokenops worker"
PIPELINE = "tokenops worker + ClickHouse sink, raw events on"


def foreign(kafka: KafkaSettings, work: Path, cfg: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"config": cfg, "catchup": {}, "live": {}, "offered": {},
                           "v2": {}, "ledger": "not checked", "rejected": []}  # fmt: skip
    n, tenants = cfg["runs"], cfg["tenants"]

    def keep(rows: dict[str, list[float]], label: str, got: Drained, what: str) -> None:
        if got.timed_out:  # reported, never averaged
            out["rejected"].append(f"{what}, {label}: {got.events:,} of {got.wanted:,} "
                                   "events before its time-out")  # fmt: skip
        else:
            rows.setdefault(label, []).append(got.rate)
        print(f"  {what}, {label}: {got.rate:,.0f} events/s", flush=True)

    live_only = cfg.get("live_only", False)  # `--foreign-live`: this phase alone
    if not live_only:
        catchup(kafka, work, cfg, out, keep)

    live_events = cfg["live_events"]
    for _ in range(n):
        load = _LiveLoad(kafka, tenants)
        keep(out["live"], RAW, _live_raw(kafka, load, live_events), "live")
        load.keep_offered(out["offered"], RAW)
        load = _LiveLoad(kafka, tenants)
        keep(out["live"], STREAMS, _live_streams(kafka, work, load, live_events), "live")
        load.keep_offered(out["offered"], STREAMS)
        load = _LiveLoad(kafka, tenants)
        rate = runs.pipeline_live(kafka, load.topics, work, load.timed_send, live_events)
        out["live"].setdefault(PIPELINE, []).append(rate)
        load.keep_offered(out["offered"], PIPELINE)
        print(f"  live, {PIPELINE}: {rate:,.0f} events/s", flush=True)
    if live_only:
        return out

    topics = new_topics(kafka)
    runs.fill(kafka, topics.usage, cfg["v2_events"], tenants)
    for _ in range(n):
        keep(out["v2"], RAW, baselines.raw_consume(kafka, topics.usage, cfg["v2_events"]), "v2")
        rate = runs.worker_catchup(kafka, topics, work, cfg["v2_events"]).rate
        out["v2"].setdefault(WORKER, []).append(rate)
        print(f"  v2, {WORKER}: {rate:,.0f} events/s", flush=True)
    return out


Keep = Callable[[dict[str, list[float]], str, Drained, str], None]


def catchup(kafka: KafkaSettings, work: Path, cfg: dict[str, Any], out: dict[str, Any],
            keep: Keep) -> None:  # fmt: skip
    """The catch-up phase: (a), (b) and the worker on one topic per partitioner and run."""
    n, events, tenants = cfg["runs"], cfg["events"], cfg["tenants"]
    for part_label, partitioner in PARTITIONERS.items():
        rows: dict[str, list[float]] = out["catchup"].setdefault(part_label, {})
        what = f"catch-up, {part_label}"
        for _ in range(n):
            # A topic per run: the worker forwards records that are not at home to their
            # home partition, so a second run on the same topic would read those copies.
            topics = new_topics(kafka)
            check = partitioner is None and out["ledger"] == "not checked"
            ledger = Ledger() if check else None
            runs.fill(kafka, topics.usage, events, tenants, 1, wire="event",
                      partitioner=partitioner, ledger=ledger)  # fmt: skip
            keep(rows, RAW, baselines.raw_consume(kafka, topics.usage, events), what)
            with StreamsApp(kafka, topics.usage, events, work, totals=check) as app:
                got = app.result()
            wrong: list[str] = []
            if ledger is not None and got.totals is not None and not got.timed_out:
                wrong = baselines.ledger_mismatches(ledger, got.totals)
                out["ledger"] = f"{len(wrong)} of {len(got.totals):,} windows differ" + (
                    f" (first: {wrong[0]})" if wrong else ""
                )
                print(f"  Kafka Streams totals vs ledger: {out['ledger']}", flush=True)
            if wrong:
                out["rejected"].append(f"{what}, {STREAMS}: totals differ from the ledger")
            else:
                keep(rows, STREAMS, got, what)
            keep(rows, AIOKAFKA, aiokafka_consume(kafka, topics.usage, events), what)
            rate = runs.worker_catchup(kafka, topics, work, events).rate
            rows.setdefault(WORKER, []).append(rate)
            print(f"  {what}, {WORKER}: {rate:,.0f} events/s", flush=True)


class _LiveLoad(BatchLoad):
    """The foreign load on a fresh topic: one CloudEvent per record, default partitioner,
    live event times; it keeps the rate it offered in its last send."""

    def __init__(self, kafka: KafkaSettings, tenants: int) -> None:
        self.topics = new_topics(kafka)
        super().__init__(kafka, self.topics.usage, tenants, 1, wire="event", partitioner=None)
        self.offered = 0.0

    def timed_send(self, events: int) -> float:
        """Sends `events` events as fast as it can; returns when it started (monotonic)."""
        start = time.monotonic()
        self.send(events)
        self.flush()
        self.offered = events / (time.monotonic() - start)
        return start

    def keep_offered(self, offered: dict[str, list[float]], label: str) -> None:
        offered.setdefault(label, []).append(self.offered)
        print(f"    (the load offered {self.offered:,.0f} events/s)", flush=True)


def _live_streams(kafka: KafkaSettings, work: Path, load: _LiveLoad, events: int) -> Drained:
    with StreamsApp(kafka, load.topic, events, work) as app:
        app.wait_running()
        start = load.timed_send(events)
        got = app.result()
    return Drained(start, got.last, got.events, events)


def _live_raw(kafka: KafkaSettings, load: _LiveLoad, events: int) -> Drained:
    """The raw consumer in its own process (spawned: librdkafka is not fork-safe), so it
    and the load do not share one interpreter."""
    ctx = multiprocessing.get_context("spawn")
    ready, done = ctx.Queue(), ctx.Queue()
    proc = ctx.Process(target=_raw_process, args=(kafka, load.topic, events, ready, done))
    proc.start()
    try:
        ready.get(timeout=60)
        start = load.timed_send(events)
        got: Drained = done.get(timeout=baselines.TIMEOUT_S + 60)
        return Drained(start, got.last, got.events, events)
    finally:
        proc.join(30)
        if proc.is_alive():
            proc.kill()


def _raw_process(kafka: KafkaSettings, topic: str, events: int, ready: Any, done: Any) -> None:
    signal: Callable[[], None] = lambda: ready.put(True)  # noqa: E731
    done.put(baselines.raw_consume(kafka, topic, events, ready=signal))


def main() -> None:
    """`python -m bench.foreign [--quick]`: only the catch-up phase, printed (a broker of
    its own, or TOKENOPS_KAFKA_BOOTSTRAP_SERVERS); a quick check of a worker change."""
    import argparse
    import tempfile

    from bench.pipeline_env import bench_kafka

    parser = argparse.ArgumentParser(prog="python -m bench.foreign", description=main.__doc__)
    parser.add_argument("--quick", action="store_true", help="one run, small volumes")
    cfg = QUICK if parser.parse_args().quick else FULL
    out: dict[str, Any] = {"catchup": {}, "ledger": "not checked", "rejected": []}

    def keep(rows: dict[str, list[float]], label: str, got: Drained, what: str) -> None:
        if not got.timed_out:
            rows.setdefault(label, []).append(got.rate)
        print(f"  {what}, {label}: {got.rate:,.0f} events/s", flush=True)

    work = Path(tempfile.mkdtemp(prefix="tokenops-foreign-"))
    with bench_kafka(work / "stack") as kafka:
        catchup(kafka, work, cfg, out, keep)
    for part_label, rows in out["catchup"].items():
        worker = sum(rows.get(WORKER, [0])) / max(1, len(rows.get(WORKER, [])))
        for base in (RAW, STREAMS, AIOKAFKA):
            if rows.get(base):
                ratio = worker / (sum(rows[base]) / len(rows[base]))
                print(f"{part_label}: worker / {base} = {ratio:.2f}")


if __name__ == "__main__":
    main()
