"""tokenops' own runs: live end to end with a rising rate, and catch-up on a filled topic
(worker alone, or worker and ClickHouse sink together)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.pipeline_env import (
    SINK_AGG_RECORDS,
    SINK_RAW_ROWS,
    WORKER_COUNTED,
    Service,
    Topics,
    base_env,
    end_offsets,
)
from bench.pipeline_load import BatchLoad
from tokenops.settings import KafkaSettings

SETTLE_S = 3.0


@dataclass
class Step:
    offered: float  # events/s the load generator produced
    worker: float  # events/s the worker counted during the step
    sink: float  # raw events/s the sink wrote during the step
    backlog: float  # events produced but not yet counted by the worker, at the step's end
    sustained: bool


@dataclass
class Ramp:
    steps: list[Step] = field(default_factory=list)

    @property
    def sustained(self) -> float:
        return max((s.offered for s in self.steps if s.sustained), default=0.0)

    @property
    def peak(self) -> float:
        return max((min(s.worker, s.sink) for s in self.steps), default=0.0)


def ramp(kafka: KafkaSettings, topics: Topics, work: Path, rates: list[int], step_s: float) -> Ramp:
    """Producer -> `tokenops worker` -> `tokenops sink clickhouse`, live event times, each
    rate for `step_s` seconds, stopping after the first rate the pipeline cannot hold:
    when the worker's or the sink's backlog, `SETTLE_S` after the step, grew by more
    than 10 % of the step's events.
    """
    env = base_env(kafka, topics)
    worker = Service.worker(env, work, f"ramp-{uuid.uuid4().hex[:6]}")
    sink = Service.sink(env, work, f"ramp-sink-{uuid.uuid4().hex[:6]}")
    load = BatchLoad(kafka, topics.usage, tenants=1000)
    result = Ramp()
    try:
        worker.wait_ready()
        sink.wait_ready()
        load.paced(2000, 3)  # warm up: the worker's group and the sink's first batches
        load.flush()
        time.sleep(3)
        for rate in rates:
            sent0, counted0, rows0 = (
                load.sent,
                worker.metric(WORKER_COUNTED),
                sink.metric(SINK_RAW_ROWS),
            )
            t0 = time.perf_counter()
            offered = load.paced(rate, step_s)
            load.flush()
            elapsed = time.perf_counter() - t0
            counted, rows = worker.metric(WORKER_COUNTED), sink.metric(SINK_RAW_ROWS)
            produced = load.sent - sent0
            worker.check()
            sink.check()
            time.sleep(SETTLE_S)  # the last batches in flight are not a growing backlog
            settled_w, settled_s = worker.metric(WORKER_COUNTED), sink.metric(SINK_RAW_ROWS)
            grew_w = (load.sent - settled_w) - (sent0 - counted0)
            grew_s = (load.sent - settled_s) - (sent0 - rows0)
            ok = offered >= 0.9 * rate and max(grew_w, grew_s) <= 0.1 * produced
            step = Step(
                offered,
                (counted - counted0) / elapsed,
                (rows - rows0) / elapsed,
                load.sent - min(settled_w, settled_s),
                ok,
            )
            result.steps.append(step)
            print(
                f"  ramp {rate:>8,} ev/s: offered {offered:>9,.0f}  worker {step.worker:>9,.0f}"
                f"  sink {step.sink:>9,.0f}  backlog {step.backlog:>9,.0f}  {'ok' if ok else 'LAG'}"
            )
            if not ok:
                break
            _drain(worker, sink, load.sent, 30)
    finally:
        worker.stop()
        sink.stop()
    return result


def _drain(worker: Service, sink: Service, sent: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if min(worker.metric(WORKER_COUNTED), sink.metric(SINK_RAW_ROWS)) >= sent:
            return
        time.sleep(0.5)


def fill(
    kafka: KafkaSettings,
    topic: str,
    events: int,
    tenants: int,
    per_record: int = 100,
    **load_options: Any,
) -> None:
    """`events` events over `tenants` tenants, event times spread over the last 10 minutes
    (so they fall in ten 1-minute windows per tenant and model); `load_options` go to
    `BatchLoad` (wire, partitioner, ledger)."""
    load = BatchLoad(kafka, topic, tenants, per_record, **load_options)
    now = int(time.time() * 1000)
    chunks = 10
    for i in range(chunks):
        load.fill(events // chunks, now - (chunks - i) * 60_000)


@dataclass
class CatchUp:
    rate: float
    rss_mb: float


def worker_catchup(
    kafka: KafkaSettings, topics: Topics, work: Path, events: int, profile: Path | None = None
) -> CatchUp:
    """A fresh `tokenops worker` reads the filled topic from the start; events/s from its
    first counted event until all are counted, and its peak RSS."""
    worker = Service.worker(
        base_env(kafka, topics), work, f"catchup-{uuid.uuid4().hex[:6]}", profile
    )
    try:
        start = _wait(worker, WORKER_COUNTED, 1, 300)
        _wait(worker, WORKER_COUNTED, events, 900)
        return CatchUp(events / (time.perf_counter() - start), worker.rss_mb())
    finally:
        worker.stop()


def pipeline_catchup(
    kafka: KafkaSettings, topics: Topics, work: Path, events: int, raw_events: bool
) -> float:
    """Worker and ClickHouse sink together on the filled topic: events/s until the worker
    counted every event and the sink stored what it must (raw events if enabled, and every
    aggregate record the worker wrote)."""
    env = base_env(kafka, topics)
    tag = uuid.uuid4().hex[:6]
    sink = Service.sink(env, work, f"e2e-sink-{tag}", raw_events=str(raw_events).lower())
    worker: Service | None = None
    try:
        sink.wait_ready()  # its start (chDB, migrations) is not part of the rate
        worker = Service.worker(env, work, f"e2e-{tag}")
        start = _wait(worker, WORKER_COUNTED, 1, 300)
        _wait(worker, WORKER_COUNTED, events, 900)
        if raw_events:
            _wait(sink, SINK_RAW_ROWS, events, 900)
        _wait(sink, SINK_AGG_RECORDS, end_offsets(kafka, topics.aggregates), 900)
        return events / (time.perf_counter() - start)
    finally:
        if worker is not None:
            worker.stop()
        sink.stop()


def _wait(service: Service, sample: str, at_least: float, timeout_s: float) -> float:
    """Until `sample` reaches `at_least`; returns the perf_counter time it did."""
    deadline = time.monotonic() + timeout_s
    while service.metric(sample) < at_least:
        service.check()
        if time.monotonic() > deadline:
            raise RuntimeError(f"{sample} below {at_least} after {timeout_s} s")
        time.sleep(0.1)
    return time.perf_counter()


def pipeline_live(
    kafka: KafkaSettings, topics: Topics, work: Path, send: Callable[[int], float], events: int
) -> float:
    """Worker and ClickHouse sink (raw events on) running, then `send(events)` sends live
    events as fast as it can and returns when it started. Events/s from that start until
    the sink stored the last raw event. The sink's /healthz does not say its partitions are
    assigned, so `WARM_UP` events go through both first, outside the measured part."""
    env = base_env(kafka, topics)
    tag = uuid.uuid4().hex[:6]
    sink = Service.sink(env, work, f"live-sink-{tag}", raw_events="true")
    worker = Service.worker(env, work, f"live-{tag}")
    try:
        sink.wait_ready()
        worker.wait_ready()
        send(WARM_UP)
        _wait(worker, WORKER_COUNTED, WARM_UP, 300)
        _wait(sink, SINK_RAW_ROWS, WARM_UP, 300)
        cpu = worker.cpu_seconds(), sink.cpu_seconds(), time.process_time()
        start = send(events)
        _wait(worker, WORKER_COUNTED, WARM_UP + events, 900)
        _wait(sink, SINK_RAW_ROWS, WARM_UP + events, 900)
        rate = events / (time.monotonic() - start)
        # What bounds the figure on a machine of few cores: CPU per event of each process
        # (the load generator is this process, its metric polling included).
        after = worker.cpu_seconds(), sink.cpu_seconds(), time.process_time()
        w, s, g = ((b - a) / events * 1e6 for a, b in zip(cpu, after, strict=True))
        print(f"    (CPU per event: worker {w:.1f} us, sink {s:.1f} us, load {g:.1f} us)")
        return rate
    finally:
        worker.stop()
        sink.stop()


WARM_UP = 1_000
