"""Sustained events/s of one `tokenops worker` on a pre-filled topic, next to raw ceilings.

`python -m bench.bench_worker [events] [events_per_record] [tenants] [--load v2|v1|both]`
starts a Kafka broker (or uses TOKENOPS_KAFKA_BOOTSTRAP_SERVERS), fills a 4-partition
usage topic per load with batch records (`v2`: the columnar batch the SDK sends, the
default; `v1`: the CloudEvents batch envelope; `ce`: one CloudEvent per record, as a
gateway that is not the SDK sends), then measures in the same run, on the same topic:

1. raw confluent-kafka `consume(10000)` + orjson + dict sum (no validation): the ceiling;
2. raw confluent-kafka + the worker's decoder (`decode_columns`) + dict sum;
3. one worker process from its first counted event until every event is counted, with
   its peak RSS. `TOKENOPS_BENCH_PROFILE=path` runs the worker under cProfile;
4. a cProfile of the batch path (decode, dedup, windows, store, delta) in this process.
"""

from __future__ import annotations

import argparse
import copy
import cProfile
import os
import pstats
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from confluent_kafka import Consumer, Producer

from bench.pipeline_env import bench_kafka, metric
from tokenops.schemas import COLUMNS_HEADERS, EventColumns, decode_columns, encode_columns
from tokenops.schemas.event import UsageEvent
from tokenops.schemas.wire import BATCH_CONTENT_TYPE, CLOUDEVENTS_CONTENT_TYPE, to_cloudevent
from tokenops.settings import KafkaSettings
from tokenops.stack.process import free_port
from tokenops.stack.services import tokenops_executable
from tokenops.topics import TopicSpec, ensure_topics

TOKENOPS = tokenops_executable()


def fill(
    kafka: KafkaSettings,
    topic: str,
    events: int,
    per_record: int,
    tenants: int,
    load: str = "v1",
) -> None:
    """`events` events of `tenants` tenants, `per_record` to a record, event time advancing
    over 20 minutes from an hour ago; `load` is the record format (`v1` or `v2`)."""
    producer = Producer(
        {
            **kafka.librdkafka(),
            "partitioner": "murmur2_random",
            "linger.ms": 20,
            "compression.type": "lz4",
            "queue.buffering.max.kbytes": 512_000,
        }
    )
    records = {"v2": v2_records, "v1": _v1_records, "ce": _ce_records}[load]
    start_ms = int(time.time() * 1000) - 3_600_000
    for tenant, value, headers in records(events, per_record, tenants, start_ms):
        while True:
            try:
                producer.produce(topic, value, tenant.encode(), headers=headers)
                break
            except BufferError:
                producer.poll(0.1)
        producer.poll(0)
    producer.flush(120)


_SPAN_MS = 20 * 60_000  # event time advances over 20 minutes of the topic


def _v1_records(
    events: int, per_record: int, tenants: int, start_ms: int
) -> Iterator[tuple[str, bytes, list[tuple[str, bytes]]]]:
    template = to_cloudevent(
        UsageEvent(
            id="x",
            source="//node/bench",
            time=datetime.fromtimestamp(start_ms / 1000, UTC),
            tenant_id="t",
            model="gpt-x",
            provider="acme-ai",
            input_tokens=100,
            output_tokens=50,
        )
    )
    headers = [("content-type", BATCH_CONTENT_TYPE.encode())]
    n = 0
    while n < events:
        tenant = f"tenant-{(n // per_record) % tenants:06d}"
        batch = []
        for _ in range(min(per_record, events - n)):
            ce = copy.deepcopy(template)
            t = start_ms + n * _SPAN_MS // events
            ce["id"] = f"e{n}"
            ce["time"] = (
                datetime.fromtimestamp(t / 1000, UTC).isoformat(timespec="milliseconds")[:-6] + "Z"
            )
            ce["data"]["tenant_id"] = tenant
            ce["data"]["input_tokens"] = n % 1000
            batch.append(ce)
            n += 1
        body = {
            "type": "ai.tokenops.usage.batch",
            "version": 1,
            "tenant_id": tenant,
            "events": batch,
        }
        yield tenant, orjson.dumps(body), headers


def _ce_records(
    events: int, per_record: int, tenants: int, start_ms: int
) -> Iterator[tuple[str, bytes, list[tuple[str, bytes]]]]:
    """The same events as `_v1_records`, one CloudEvent per record (what a gateway that
    is not the Python SDK sends); `per_record` only sets how tenants take turns."""
    headers = [("content-type", CLOUDEVENTS_CONTENT_TYPE.encode())]
    for tenant, value, _ in _v1_records(events, per_record, tenants, start_ms):
        for ce in orjson.loads(value)["events"]:
            yield tenant, orjson.dumps(ce), headers


def v2_records(
    events: int, per_record: int, tenants: int, start_ms: int
) -> Iterator[tuple[str, bytes, list[tuple[str, bytes]]]]:
    """The same events as `_v1_records`, as columnar (v2) batch records."""
    n = 0
    while n < events:
        tenant = f"tenant-{(n // per_record) % tenants:06d}"
        numbers = range(n, min(n + per_record, events))
        size = len(numbers)
        columns = EventColumns(
            tenant_id=tenant,
            id=[f"e{i}" for i in numbers],
            source=["//node/bench"] * size,
            time_ms=[start_ms + i * _SPAN_MS // events for i in numbers],
            model=["gpt-x"] * size,
            provider=["acme-ai"] * size,
            operation=["chat"] * size,
            input_tokens=[i % 1000 for i in numbers],
            output_tokens=[50] * size,
            cache_read_input_tokens=[0] * size,
            cache_creation_input_tokens=[0] * size,
            reasoning_output_tokens=[0] * size,
            project_id=[None] * size,
            agent_id=[None] * size,
            user_id=[None] * size,
            api_key_id=[None] * size,
            region=[None] * size,
            node_id=[None] * size,
        )
        n += size
        yield tenant, encode_columns(columns), COLUMNS_HEADERS


def raw_consume(
    kafka: KafkaSettings, topic: str, events: int, decode: Callable[[bytes, Any], int]
) -> tuple[float, float]:
    """(events per wall-clock second, events per CPU second of this process)."""
    consumer = Consumer(
        {
            **kafka.librdkafka(),
            "group.id": f"bench-{uuid.uuid4().hex}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    seen = 0
    start = cpu = None
    while seen < events:
        for m in consumer.consume(10_000, timeout=1.0):
            if m.error():
                continue
            if start is None:
                start, cpu = time.perf_counter(), time.process_time()
            seen += decode(m.value(), m.headers())
    elapsed = time.perf_counter() - (start or time.perf_counter())
    cpu_s = time.process_time() - (cpu or time.process_time())
    consumer.close()
    return events / elapsed, events / cpu_s


def sum_orjson(value: bytes, headers: Any) -> int:
    """Tokens per tenant straight from the JSON (v1 or v2 batch), nothing checked."""
    totals: dict[str, int] = {}
    body = orjson.loads(value)
    if "data" in body:
        d = body["data"]
        totals[d["tenant_id"]] = totals.get(d["tenant_id"], 0) + d["input_tokens"]
        return 1
    if "columns" in body:
        tenant, tokens = body["tenant_id"], body["columns"]["input_tokens"]
        totals[tenant] = totals.get(tenant, 0) + sum(tokens)
        return len(tokens)
    for ce in body["events"]:
        d = ce["data"]
        totals[d["tenant_id"]] = totals.get(d["tenant_id"], 0) + d["input_tokens"]
    return len(body["events"])


def sum_decoded(value: bytes, headers: Any) -> int:
    """Tokens per tenant after the worker's decoder (every rule of the contract checked)."""
    totals: dict[str, int] = {}
    columns = decode_columns(value, headers)
    totals[columns.tenant_id] = totals.get(columns.tenant_id, 0) + sum(columns.input_tokens)
    return len(columns)


def run_worker(
    kafka: KafkaSettings, topic: str, events: int, state: Path
) -> tuple[float, float, float]:
    """(events/s, events per CPU second of the worker process, peak RSS MiB)."""
    port = free_port()
    app_id = f"bench-{uuid.uuid4().hex[:8]}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOKENOPS_")}
    env.update(
        TOKENOPS_KAFKA_BOOTSTRAP_SERVERS=kafka.bootstrap_servers,
        TOKENOPS_TOPIC_USAGE=topic,
        TOKENOPS_TOPIC_AGGREGATES=f"{app_id}.aggregates",
        TOKENOPS_TOPIC_DEAD_LETTER=f"{app_id}.dlq",
        TOKENOPS_TOPIC_QUOTA_ALERTS=f"{app_id}.alerts",
        TOKENOPS_TOPIC_QUOTAS=f"{app_id}.quotas",
        TOKENOPS_WORKER_APP_ID=app_id,
        TOKENOPS_WORKER_STATE_DIR=str(state),
        TOKENOPS_WORKER_HTTP_PORT=str(port),
        TOKENOPS_LOG_PROGRESS_EVERY_S="5",
        TOKENOPS_LOG_LEVEL=os.environ.get("TOKENOPS_LOG_LEVEL", "WARNING"),
    )
    for name in ("BATCH_MAX_RECORDS", "BATCH_WITHIN_S"):
        if f"TOKENOPS_WORKER_{name}" in os.environ:
            env[f"TOKENOPS_WORKER_{name}"] = os.environ[f"TOKENOPS_WORKER_{name}"]
    command = [TOKENOPS, "worker"]
    profile = os.environ.get("TOKENOPS_BENCH_PROFILE")
    if profile:
        command = [sys.executable, "-m", "cProfile", "-o", profile, TOKENOPS, "worker"]
    log = state.parent / "worker.log"
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=log.open("wb"))
    try:
        start = None
        cpu = 0.0
        counted = 0.0
        while counted < events:
            time.sleep(0.2)
            assert proc.poll() is None, "worker exited: " + log.read_text()[-3000:]
            counted = metric(port, 'tokenops_worker_events_total{outcome="counted"}')
            if counted and start is None:
                start, cpu = time.perf_counter(), _cpu_s(proc.pid)
        elapsed = time.perf_counter() - (start or 0)
        cpu_s = _cpu_s(proc.pid) - cpu
        rss = _peak_rss_mb(proc.pid)
        return events / elapsed, events / cpu_s, rss
    finally:
        proc.terminate()
        proc.wait(60)


def profile_batch_path(kafka: KafkaSettings, topic: str, records: int, state: Path) -> None:
    """cProfile of the worker's batch path (decode, dedup, windows, store, delta) in this
    process, on the first `records` records of the topic's partition 0 (one partition's
    state sees only its own records, in order: mixing partitions would make events
    late), grouped by where the time goes."""
    from tests.harness.partition import partition_state
    from tokenops.streams.partition import InputRecord
    from tokenops.streams.signing import worker_decoder

    consumer = Consumer(
        {
            **kafka.librdkafka(),
            "group.id": f"bench-{uuid.uuid4().hex}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    batch: list[InputRecord] = []
    while len(batch) < records:
        for m in consumer.consume(min(10_000, records - len(batch)), timeout=1.0):
            if not m.error() and m.partition() == 0 and len(batch) < records:
                ts = m.timestamp()[1]
                batch.append(InputRecord(len(batch), m.key(), m.value(), m.headers(), ts))
    consumer.close()
    partition = partition_state(state / "profile", decode=worker_decoder(None), owner="bench")
    profiler = cProfile.Profile()
    profiler.enable()
    for i in range(0, len(batch), 100):
        _, delta, _ = partition.process(batch[i : i + 100], int(time.time() * 1000))
        delta.to_bytes()
        partition.commit(delta, i + 1)
    profiler.disable()
    stats = pstats.Stats(profiler).stats  # type: ignore[attr-defined]

    def cum(file_suffix: str, name: str) -> float:
        return sum(v[3] for (f, _, n), v in stats.items() if f.endswith(file_suffix) and n == name)

    total = cum("partition.py", "process") + cum("delta.py", "to_bytes") + cum("store.py", "apply")
    windows = cum("windows.py", "add_columns") + cum("windows.py", "finish")
    seen = cum("store.py", "seen")
    parts = {
        "decode (WorkerDecoder.many, schemas/)": cum("signing.py", "many"),
        "dedup loop (keys, batch bookkeeping)": cum("partition.py", "_count") - windows - seen,
        "windows: add + close (streams/windows.py)": windows,
        "dedup lookups (RocksDB multi-get)": seen,
        "state write (RocksDB write batch)": cum("store.py", "apply"),
        "changelog record (StateDelta.to_bytes)": cum("delta.py", "to_bytes"),
        "output records (WindowTotals)": cum("partition.py", "_totals_record"),
    }
    parts["rest of the batch loop"] = total - sum(parts.values())
    print(f"profile of the batch path ({records} records, {total:.1f}s under cProfile):")
    for part, spent in parts.items():
        print(f"  {part:44} {spent / total:6.1%}")


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def _peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _row(name: str, rate: float, per_cpu: float, extra: str = "") -> None:
    print(f"{name:48} {rate:>12,.0f} {per_cpu:>13,.0f}{extra}")


def measure(kafka: KafkaSettings, events: int, per_record: int, tenants: int, load: str) -> None:
    with tempfile.TemporaryDirectory(prefix="tokenops-bench-") as tmp:
        topic = f"bench.usage.{uuid.uuid4().hex[:8]}"
        ensure_topics(kafka, [TopicSpec(topic, 4, 1)])
        t = time.perf_counter()
        fill(kafka, topic, events, per_record, tenants, load)
        took = time.perf_counter() - t
        records = events if load == "ce" else events // per_record
        print(f"\n{load} load: {events} events in {records} records ({took:.1f}s)")
        print(f"{'':48} {'events/s':>12} {'events/CPU-s':>13}")
        ceiling = raw_consume(kafka, topic, events, sum_orjson)
        _row("raw confluent-kafka + orjson + dict sum", *ceiling)
        decoded = raw_consume(kafka, topic, events, sum_decoded)
        _row("raw confluent-kafka + decode_columns + dict sum", *decoded)
        rate, rate_cpu, rss = run_worker(kafka, topic, events, Path(tmp) / "state")
        _row("tokenops worker (exact, durable)", rate, rate_cpu, f"  peak RSS {rss:.0f} MiB")
        profile_batch_path(kafka, topic, min(2_000, records // 8), Path(tmp))
        for name, (base, base_cpu) in (("raw ceiling", ceiling), ("raw+decode", decoded)):
            print(
                f"worker / {name} = {rate / base:.2f} wall-clock, "
                f"{rate_cpu / base_cpu:.2f} per CPU-second"
            )


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_worker", description=__doc__)
    parser.add_argument("events", type=int, nargs="?", default=1_000_000)
    parser.add_argument("per_record", type=int, nargs="?", default=100)
    parser.add_argument("tenants", type=int, nargs="?", default=1000)
    parser.add_argument("--load", choices=("v2", "v1", "ce", "both"), default="v2")
    args = parser.parse_args()
    loads = ("v2", "v1") if args.load == "both" else (args.load,)
    with (
        tempfile.TemporaryDirectory(prefix="tokenops-bench-") as tmp,
        bench_kafka(Path(tmp) / "kafka") as kafka,
    ):
        for load in loads:
            measure(kafka, args.events, args.per_record, args.tenants, load)


if __name__ == "__main__":
    main()
