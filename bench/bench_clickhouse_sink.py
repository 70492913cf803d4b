"""Rows/s written by one `tokenops sink clickhouse` into the embedded store, with baselines.

`python -m bench.bench_clickhouse_sink [events] [events_per_record] [v2|v1|ce]` starts a
Kafka broker (or uses TOKENOPS_KAFKA_BOOTSTRAP_SERVERS), fills a 4-partition usage topic
with batch records (v2 columnar records by default, v1 envelopes of CloudEvents with
`v1`; with `ce` one CloudEvent per record, what a gateway that is not the SDK sends,
keyed and placed at home), then measures in the same run, on the same rows:

1. bare `client.insert` of the same raw-event rows into a fresh embedded store, in chunks
   of the sink's batch size, column-oriented, already in memory: the storage ceiling;
2. raw confluent-kafka consume + the sink's own `decode_chunk` (`decode_columns` and
   column joins), no storage: the decode ceiling; and the same with the per-event path
   the sink had before (`bench/sink_legacy.py`: `decode_record` and `UsageEvent`s);
3. one sink process, from its first consumed record until every row is written
   (read from its /metrics), with its peak RSS: the sink as it is, and the sink with
   the per-event decode swapped in ("before"), alternating `TOKENOPS_BENCH_REPEATS`
   times (default 1). `TOKENOPS_BENCH_DECODE_PROCESSES` (default `0`, e.g. `0,2`) lists
   the decoder-process counts of the current sink to run.
   `TOKENOPS_BENCH_SINK_BEFORE=<tokenops executable>` runs that one (another checkout's,
   say the code before a change) as "before" instead of the per-event decode.

`TOKENOPS_BENCH_LIVE=1` measures the sinks live instead of catching up: each run starts
its sink on a fresh empty topic, sends `WARM_UP` events through it (so its partitions are
assigned), then sends the events while it runs (from this process, as fast as it can,
so it reads a few records per fetch and closes its batches at `batch_max_ms`, as it
does behind a live worker) and times them from the first send until the last is stored.
The storage and decode ceilings are skipped. With `TOKENOPS_BENCH_FORWARDED=1` (and `ce`)
the topic holds about what the sink reads behind a live worker under librdkafka's
default partitioner: three events in four land first away from their tenant's home
partition (the sink skips them undecoded) and again at home, where the worker forwards
them (here each copy alone; the worker sends a batch's copies as one bundle record).

Rates are per second of wall-clock time and per second of CPU time (all threads and
decoder processes); on a shared machine the CPU-time rates are the ones to compare.
`TOKENOPS_BENCH_PROFILE=<file>` runs the current inline sink under cProfile;
`TOKENOPS_BENCH_PYSPY=<prefix>` runs both sinks under py-spy (collapsed stacks of the
active threads in `<prefix>-before.txt` and `<prefix>-after.txt`, rates then include
nothing of py-spy but are slowed by it); `TOKENOPS_BENCH_THREADS=1` prints the CPU
seconds of each sink's threads by name.

Target: the sink keeps up with the raw events of a 100,000 events/s stream.
"""

from __future__ import annotations

import contextlib
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NamedTuple

from confluent_kafka import Consumer, Producer

from bench import sink_legacy
from bench.bench_worker import _ce_records, _peak_rss_mb, fill
from bench.pipeline_env import bench_kafka
from tokenops.placement import home_partition
from tokenops.settings import KafkaSettings
from tokenops.sinks.clickhouse import ClickHouseSettings, open_store
from tokenops.sinks.clickhouse.decoding import RawRecord, decode_chunk
from tokenops.sinks.clickhouse.migrations import migrate
from tokenops.sinks.clickhouse.rows import EVENT_COLUMNS, Decoded
from tokenops.sinks.clickhouse.sink import DECODE_CHUNK_RECORDS, raise_young_gc_threshold
from tokenops.stack.process import free_port
from tokenops.topics import TopicSpec, ensure_topics

TOKENOPS = str(Path(sys.executable).parent / "tokenops")
BATCH_ROWS = ClickHouseSettings().batch_max_rows


class Rate(NamedTuple):
    wall: float  # rows per second of elapsed time
    cpu: float  # rows per second of CPU time (all threads and child processes)

    def __str__(self) -> str:
        return f"{self.wall:>10,.0f} rows/s  {self.cpu:>10,.0f} rows/CPU-s"


def decode_columns(
    kafka: KafkaSettings,
    topic: str,
    events: int,
    decode: Callable[[Sequence[RawRecord]], Decoded] = decode_chunk,
) -> tuple[list[list[object]], Rate]:
    """Every event of the topic as raw_events columns (the sink's own decoding code, or
    `decode`), and the rate of consume + decode (events/s)."""
    consumer = Consumer(
        {
            **kafka.librdkafka(),
            "group.id": f"bench-{uuid.uuid4().hex}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    columns: list[list[object]] = [[] for _ in EVENT_COLUMNS]
    start = None
    cpu = 0.0
    while len(columns[0]) < events:
        messages = [m for m in consumer.consume(10_000, timeout=1.0) if not m.error()]
        if not messages:
            continue
        start = start or time.perf_counter()
        records = [(m.value(), m.headers(), m.partition() or 0, m.offset() or 0) for m in messages]
        before = time.process_time()
        for at in range(0, len(records), DECODE_CHUNK_RECORDS):  # as the sink decodes them
            decoded, _ = decode(records[at : at + DECODE_CHUNK_RECORDS])
            for mine, theirs in zip(columns, decoded, strict=True):
                mine.extend(theirs)
        cpu += time.process_time() - before
    elapsed = time.perf_counter() - (start or time.perf_counter())
    consumer.close()
    return columns, Rate(events / elapsed, events / cpu)


def bare_insert(columns: list[list[object]], store_dir: Path) -> Rate:
    settings = ClickHouseSettings(url=f"chdb://{store_dir}")
    with open_store(settings, store_dir) as store:
        migrate(store.client, 0)
        rows = len(columns[0])
        start, cpu = time.perf_counter(), time.process_time()
        for i in range(0, rows, BATCH_ROWS):
            chunk = [column[i : i + BATCH_ROWS] for column in columns]
            store.client.insert(
                "raw_events", chunk, column_names=EVENT_COLUMNS, column_oriented=True
            )
        return Rate(rows / (time.perf_counter() - start), rows / (time.process_time() - cpu))


WARM_UP = 1_000  # live: events through the sink before the measured part


def run_sink(
    kafka: KafkaSettings,
    topic: str,
    events: int,
    tmp: Path,
    decode_processes: int,
    legacy: bool = False,
    send: Callable[[str, int], None] | None = None,
) -> tuple[Rate, float]:
    """One sink process on the topic (`legacy`: with the per-event decode of before).
    With `send` (live), the topic starts empty: `send(topic, n)` sends n events to it."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOKENOPS_")}
    env.update(
        HOME=str(tmp),
        TOKENOPS_KAFKA_BOOTSTRAP_SERVERS=kafka.bootstrap_servers,
        TOKENOPS_TOPIC_USAGE=topic,
        TOKENOPS_TOPIC_AGGREGATES=f"{topic}.aggregates",
        TOKENOPS_CLICKHOUSE_URL=f"chdb://{tmp / f'sink-store-{uuid.uuid4().hex[:8]}'}",
        TOKENOPS_CLICKHOUSE_DECODE_PROCESSES=str(decode_processes),
        TOKENOPS_CLICKHOUSE_HTTP_PORT=str(port),
        TOKENOPS_CLICKHOUSE_CONSUMER_GROUP=f"bench-{uuid.uuid4().hex[:8]}",
        TOKENOPS_LOG_LEVEL=os.environ.get("TOKENOPS_LOG_LEVEL", "WARNING"),
    )
    for name in ("BATCH_MAX_ROWS", "BATCH_MAX_MS"):
        if f"TOKENOPS_CLICKHOUSE_{name}" in os.environ:
            env[f"TOKENOPS_CLICKHOUSE_{name}"] = os.environ[f"TOKENOPS_CLICKHOUSE_{name}"]
    command = [TOKENOPS, "sink", "clickhouse"]
    before = os.environ.get("TOKENOPS_BENCH_SINK_BEFORE")
    if legacy and before:
        command = [before, "sink", "clickhouse"]
    elif legacy:
        command = [sys.executable, "-m", "bench.sink_legacy", "sink", "clickhouse"]
    profile = os.environ.get("TOKENOPS_BENCH_PROFILE")
    if profile and decode_processes == 0 and not legacy:
        command = [sys.executable, "-m", "cProfile", "-o", profile, *command]
    spying = os.environ.get("TOKENOPS_BENCH_PYSPY")
    if spying:  # py-spy cannot attach to a running sink here; it starts it instead
        out = f"{spying}-{'before' if legacy else 'after'}.txt"
        spy = str(Path(sys.executable).parent / "py-spy")
        options = ["--nonblocking", "-r", "100", "-f", "raw", "-o", out]
        command = [spy, "record", *options, "--", *command]
    ensure_topics(kafka, [TopicSpec(f"{topic}.aggregates", 4, 1)])
    proc = subprocess.Popen(command, env=env, cwd=Path(__file__).parent.parent)
    pid = proc.pid
    try:
        if spying:
            pid = _child(proc.pid)  # the sink, which py-spy started
        if send is not None:
            return _live(send, events, topic, pid, proc, port)
        start = None
        written = 0.0
        while written < events:
            time.sleep(0.02)
            assert proc.poll() is None, "sink exited"
            if start is None and _metric(port, "tokenops_clickhouse_sink_records_total") > 0:
                start = time.perf_counter()  # the first record is consumed
                cpu = _cpu_seconds(pid)
                threads = _thread_cpu_seconds(pid)
            written = _metric(port, 'tokenops_clickhouse_sink_rows_total{table="raw_events"}')
        elapsed = time.perf_counter() - (start or 0)
        used = _cpu_seconds(pid) - cpu
        if os.environ.get("TOKENOPS_BENCH_THREADS"):
            after = _thread_cpu_seconds(pid)
            spent = {name: after[name] - threads.get(name, 0.0) for name in after}
            top = sorted(spent.items(), key=lambda item: -item[1])[:8]
            print("  CPU-s by thread: " + ", ".join(f"{n} {s:.2f}" for n, s in top if s > 0))
        return Rate(events / elapsed, events / used), _peak_rss_mb(pid)
    finally:
        if pid != proc.pid:
            os.kill(pid, signal.SIGTERM)  # the sink; py-spy writes its samples as it exits
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(120)
        proc.terminate()
        proc.wait(60)


def _live(
    send: Callable[[str, int], None],
    events: int,
    topic: str,
    pid: int,
    proc: subprocess.Popen[bytes],
    port: int,
) -> tuple[Rate, float]:
    """`run_sink`'s live measurement of sink `pid`: warm up, then time `events` sent
    while it runs."""
    raw = 'tokenops_clickhouse_sink_rows_total{table="raw_events"}'
    send(topic, WARM_UP)
    _wait_rows(proc, port, raw, WARM_UP)
    cpu, start = _cpu_seconds(pid), time.perf_counter()
    send(topic, events)
    _wait_rows(proc, port, raw, WARM_UP + events)
    elapsed, used = time.perf_counter() - start, _cpu_seconds(pid) - cpu
    return Rate(events / elapsed, events / used), _peak_rss_mb(pid)


def send_forwarded(kafka: KafkaSettings, topic: str, events: int, tenants: int) -> None:
    """`events` single CloudEvents of `tenants` tenants on a 4-partition topic as a live
    worker leaves them: three in four first away from home (keyed), then at home."""
    producer = Producer(
        {
            **kafka.librdkafka(),
            "linger.ms": 20,
            "compression.type": "lz4",
            "queue.buffering.max.kbytes": 512_000,
        }
    )
    start_ms = int(time.time() * 1000) - 3_600_000
    for n, (tenant, value, headers) in enumerate(_ce_records(events, 1, tenants, start_ms)):
        home = home_partition(tenant, 4)
        for partition in [home] if n % 4 == 0 else [(home + n) % 4, home]:
            while True:
                try:
                    producer.produce(
                        topic, value, tenant.encode(), partition=partition, headers=headers
                    )
                    break
                except BufferError:
                    producer.poll(0.1)
        producer.poll(0)
    producer.flush(120)


def _wait_rows(proc: subprocess.Popen[bytes], port: int, sample: str, rows: int) -> None:
    while _metric(port, sample) < rows:  # as often as the foreign bench's live phase
        assert proc.poll() is None, "sink exited"
        time.sleep(0.1)


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of `pid` and its live child processes (decoders)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if stat.parent.name == str(pid) or fields[1] == str(pid):
            total += (int(fields[11]) + int(fields[12])) / tick
    return total


def _child(pid: int) -> int:
    """The first child process of `pid` (the sink py-spy started)."""
    for _ in range(500):
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                if stat.read_text().rsplit(")", 1)[1].split()[1] == str(pid):
                    return int(stat.parent.name)
            except OSError:
                continue
        time.sleep(0.01)
    raise RuntimeError(f"no child process of {pid}")


def _thread_cpu_seconds(pid: int) -> dict[str, float]:
    """CPU seconds of the threads of `pid` by thread name (digits dropped, so a pool of
    librdkafka or ClickHouse threads adds up under one name)."""
    tick = os.sysconf("SC_CLK_TCK")
    totals: dict[str, float] = {}
    for stat in Path(f"/proc/{pid}/task").glob("*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        name = text[text.index("(") + 1 : text.rindex(")")].rstrip("0123456789/:_- ") or "?"
        if stat.parent.name == str(pid):
            name = "main"
        fields = text.rsplit(")", 1)[1].split()
        totals[name] = totals.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / tick
    return totals


def _metric(port: int, name: str) -> float:
    """The sum of the samples of `name` (a name, or a name with labels) on /metrics."""
    total = 0.0
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
            for line in r.read().decode().splitlines():
                prefixes = (name,) if "{" in name else (name + " ", name + "{")
                if line.startswith(prefixes):
                    total += float(line.split()[-1])
    except OSError:
        pass
    return total


def main(events: int = 500_000, per_record: int = 100, record_format: str = "v2") -> None:
    if record_format not in ("v1", "v2", "ce"):
        raise SystemExit(f"record format must be v1, v2 or ce, not {record_format!r}")
    repeats = int(os.environ.get("TOKENOPS_BENCH_REPEATS", "1"))
    raise_young_gc_threshold()  # the sink process's collector setting, for its decode here
    processes = [int(p) for p in os.environ.get("TOKENOPS_BENCH_DECODE_PROCESSES", "0").split(",")]
    live = bool(os.environ.get("TOKENOPS_BENCH_LIVE"))
    with tempfile.TemporaryDirectory(prefix="tokenops-bench-") as tmp_name:
        tmp = Path(tmp_name)
        with bench_kafka(tmp / "kafka") as kafka:
            print(f"load average at the start: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
            topic, bare = f"bench.usage.{uuid.uuid4().hex[:8]}", None
            if not live:
                bare = _ceilings(kafka, topic, events, per_record, record_format, tmp)

            def send(topic: str, n: int) -> None:
                if os.environ.get("TOKENOPS_BENCH_FORWARDED") and record_format == "ce":
                    send_forwarded(kafka, topic, n, tenants=1000)
                else:
                    fill(kafka, topic, n, per_record, tenants=1000, load=record_format)

            runs: dict[str, list[Rate]] = {}
            for _ in range(repeats):
                before = os.environ.get("TOKENOPS_BENCH_SINK_BEFORE")
                label = f"before ({before})" if before else "before (per-event decode)"
                variants = [(f"{label}, decode_processes=0", 0, True)]
                variants += [(f"decode_processes={p}", p, False) for p in processes]
                for name, count, legacy in variants:
                    if live:  # a fresh topic per run: the sink reads from the start
                        topic = f"bench.usage.{uuid.uuid4().hex[:8]}"
                        ensure_topics(kafka, [TopicSpec(topic, 4, 1)])
                    rate, rss = run_sink(
                        kafka, topic, events, tmp, count, legacy, send if live else None
                    )
                    runs.setdefault(name, []).append(rate)
                    label = f"tokenops sink clickhouse{', live' if live else ''}, {name}:"
                    print(
                        f"{label:<56}{rate}  {1e6 / rate.cpu:.1f} us/event  peak RSS {rss:.0f} MiB"
                    )
                    if bare is not None:
                        print(
                            f"  sink / bare insert = {rate.wall / bare.wall:.2f}; target 100,000 "
                            + ("rows/s: met" if rate.wall >= 100_000 else "rows/s: NOT met")
                            + " (wall); "
                            + ("met" if rate.cpu >= 100_000 else "NOT met")
                            + " per CPU-second"
                        )
            if repeats > 1:
                for name, rates in runs.items():
                    wall = statistics.median(r.wall for r in rates)
                    cpu = statistics.median(r.cpu for r in rates)
                    label = f"median of {repeats}, {name}:"
                    print(f"{label:<56}{Rate(wall, cpu)}")
            print(f"load average at the end: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")


def _ceilings(
    kafka: KafkaSettings, topic: str, events: int, per_record: int, record_format: str, tmp: Path
) -> Rate:
    """Fill the catch-up `topic` and print the storage and decode ceilings; returns the
    bare insert's rate."""
    ensure_topics(kafka, [TopicSpec(topic, 4, 1)])
    t = time.perf_counter()
    fill(kafka, topic, events, per_record, tenants=1000, load=record_format)
    took = time.perf_counter() - t
    print(
        f"filled {events} events in {-(-events // per_record)} {record_format} records "
        f"({took:.1f}s)"
    )
    _, legacy_decoded = decode_columns(kafka, topic, events, sink_legacy.decode_chunk)
    columns, decoded = decode_columns(kafka, topic, events)
    bare = bare_insert(columns, tmp / "bare-store")
    del columns
    label = f"bare client.insert, {BATCH_ROWS}-row column chunks:"
    print(f"{label:<56}{bare}")
    label = "consume + decode, no storage, before (per event):"
    print(f"{label:<56}{legacy_decoded}")
    label = "consume + decode, no storage (decode_columns):"
    print(f"{label:<56}{decoded}")
    return bare


if __name__ == "__main__":
    args = sys.argv[1:]
    fmt = args.pop() if args and args[-1] in ("v1", "v2", "ce") else "v2"
    sizes = [int(a) for a in args] + [500_000, 100][len(args) :]
    main(sizes[0], sizes[1], record_format=fmt)
