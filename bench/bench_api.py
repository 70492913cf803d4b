"""`tokenops api` under load, next to a hello-world route of the same server, same run.

`python -m bench.bench_api [seconds] [connections]` (or `python -m bench --only api`)
starts a Kafka broker (or uses TOKENOPS_KAFKA_BOOTSTRAP_SERVERS) and one API server
process with an extra `GET /hello` route, then measures with a keep-alive HTTP/1.1
client in this process (the two share the machine's cores). The closed-loop figures
run `rounds` times, alternated, and report medians; each also reports the CPU time per
request of the server process (all its threads) and of this client, so a client or a
machine at its limit shows:

1. GET /hello requests/s: the server's ceiling;
2. single-event POST /v1/events requests/s (each 200 is acknowledged by Kafka);
3. 100-event batch POSTs, in events/s: one tenant per batch, and 50 tenants mixed;
4. GET /v1/quotas/{tenant} at a fixed 1,000 requests/s: p50/p99 latency, measured from
   each request's scheduled time (so a stall counts for every request it delays);
5. 1 to 3 again (mixed batches aside) on two server processes sharing the port
   (`TOKENOPS_API_REUSE_PORT`), named `..._2p`, alternated with the others.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from confluent_kafka import Producer

from bench.pipeline_env import bench_kafka, new_topics
from tokenops.api.keys import new_key
from tokenops.schemas.quota import QuotaDefinition
from tokenops.settings import KafkaSettings
from tokenops.stack.process import free_port

Body = Callable[[int], bytes]


def _event(i: int, tenant: str | None = None) -> dict[str, Any]:
    # milliseconds and Z, as the SDK writes times: the decoder's quick path takes them
    now = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())
    return {
        "specversion": "1.0", "type": "ai.tokenops.usage", "source": "//bench/api",
        "id": f"{uuid.uuid4().hex}-{i}", "time": now,
        "data": {"schema_version": 1, "tenant_id": tenant or f"t{i % 50}", "model": "gpt-4o",
                 "provider": "openai", "input_tokens": 100 + i % 7, "output_tokens": 20},
    }  # fmt: skip


def _request(method: str, path: str, key: str, body: bytes = b"", kind: str = "") -> bytes:
    head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {key}\r\n"
    if body:
        head += f"Content-Type: {kind}\r\nContent-Length: {len(body)}\r\n"
    return head.encode() + b"\r\n" + body


async def _exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, data: bytes) -> int:
    writer.write(data)
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    await reader.readexactly(length)
    return status


async def closed_loop(
    port: int, requests: list[bytes], connections: int, seconds: float
) -> dict[str, float]:
    """As many requests as `connections` keep-alive clients complete in `seconds`."""
    done, errors, stop = [0], [0], time.monotonic() + seconds

    async def client(offset: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        i = offset
        while time.monotonic() < stop:
            status = await _exchange(reader, writer, requests[i % len(requests)])
            done[0] += status == 200
            errors[0] += status != 200
            i += connections
        writer.close()

    started = time.monotonic()
    await asyncio.gather(*(client(c) for c in range(connections)))
    elapsed = time.monotonic() - started
    return {"per_s": done[0] / elapsed, "errors": errors[0]}


async def open_loop(
    port: int, requests: list[bytes], rate: int, seconds: float
) -> dict[str, float]:
    """`rate` requests/s (`requests` in turn) on a pool of connections; latency from each
    scheduled time."""
    pool: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = asyncio.Queue()
    for _ in range(32):
        pool.put_nowait(await asyncio.open_connection("127.0.0.1", port))
    latencies: list[float] = []
    errors = [0]

    async def one(scheduled: float, request: bytes) -> None:
        reader, writer = await pool.get()
        status = await _exchange(reader, writer, request)
        latencies.append(time.monotonic() - scheduled)
        errors[0] += status != 200
        pool.put_nowait((reader, writer))

    start, tasks = time.monotonic(), []
    for n in range(int(rate * seconds)):
        scheduled = start + n / rate
        delay = scheduled - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(scheduled, requests[n % len(requests)])))
    await asyncio.gather(*tasks)
    latencies.sort()
    return {
        "p50_ms": latencies[len(latencies) // 2] * 1000,
        "p99_ms": latencies[int(len(latencies) * 0.99)] * 1000,
        "achieved_per_s": len(latencies) / (time.monotonic() - start),
        "errors": errors[0],
    }


def process_cpu_s(pid: int) -> float:
    """CPU seconds (user + system) of every thread of process `pid` so far (Linux)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            fields = Path(f"/proc/{pid}/task/{task}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # the thread ended meanwhile
            continue
        total += int(fields[11]) + int(fields[12])
    return total / tick


def measured(pids: list[int], port: int, requests: list[bytes], connections: int, seconds: float
             ) -> dict[str, float]:  # fmt: skip
    """`closed_loop`, with the server processes' and this client's CPU microseconds per
    request."""
    server, client = sum(map(process_cpu_s, pids)), time.process_time()
    result = asyncio.run(closed_loop(port, requests, connections, seconds))
    done = max(1.0, result["per_s"] * seconds)
    result["server_cpu_us"] = (sum(map(process_cpu_s, pids)) - server) / done * 1e6
    result["client_cpu_us"] = (time.process_time() - client) / done * 1e6
    return result


def paced(pids: list[int], port: int, requests: list[bytes], rate: int, seconds: float
          ) -> dict[str, float]:  # fmt: skip
    """`open_loop` at `rate`, with the server processes' CPU microseconds per request: at
    one rate for two servers, requests share loop turns and records alike, so their CPU
    per request compares the code, not how the machine's load spread the requests."""
    server = sum(map(process_cpu_s, pids))
    result = asyncio.run(open_loop(port, requests, rate, seconds))
    done = max(1.0, result["achieved_per_s"] * seconds)
    result["per_s"] = result["achieved_per_s"]
    result["server_cpu_us"] = (sum(map(process_cpu_s, pids)) - server) / done * 1e6
    result["client_cpu_us"] = 0.0  # not measured: the pacing loop's own cost is in it
    return result


@dataclass
class Server:
    processes: list[subprocess.Popen[bytes]]
    port: int
    key: str  # an admin API key
    topic: str  # its usage topic

    @property
    def pids(self) -> list[int]:
        return [process.pid for process in self.processes]

    def stop(self) -> None:
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            process.wait(30)


def start_server(
    kafka: KafkaSettings,
    tmp: Path,
    python: str = sys.executable,
    tree: Path | None = None,
    processes: int = 1,
) -> Server:
    """The benchmark's server, run by `python` from the source `tree` (this one unless
    given: bench_api_ab.py runs two trees side by side), as `processes` processes on one
    port (`TOKENOPS_API_REUSE_PORT`), each with its own producer."""
    topics = new_topics(kafka)
    keys = tmp / "keys.json"
    key = new_key(keys, None)[1]
    quota = QuotaDefinition(tenant_id="t1", name="daily", period="day", limit=10**9)
    producer = Producer(kafka.librdkafka())
    producer.produce(topics.quotas, quota.to_bytes(), key=quota.key.encode())
    producer.flush(10)
    port = free_port()
    env = {
        **os.environ,
        **topics.env(),
        "TOKENOPS_KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
        "TOKENOPS_PRODUCER_TOPIC": topics.usage,
        "TOKENOPS_PRODUCER_SPOOL_DIR": str(tmp / "spool"),
        "TOKENOPS_API_PORT": str(port),
        "TOKENOPS_API_KEYS_FILE": str(keys),
        "TOKENOPS_API_QUERIES": "false",
        "TOKENOPS_API_REUSE_PORT": str(processes > 1).lower(),
        "TOKENOPS_LOG_LEVEL": "WARNING",
    }
    log = (tmp / "api.log").open("ab")
    server = Server([
        subprocess.Popen([python, "-m", "bench.bench_api", "--serve"], env=env, cwd=tree,
                         stdout=log, stderr=subprocess.STDOUT)
        for _ in range(processes)
    ], port, key, topics.usage)  # fmt: skip
    deadline, answered = time.monotonic() + 60, 0
    # Each probe is a new connection, which the kernel gives to any of the processes:
    # many answers in a row mean every process is up and has read the quota topics.
    while answered < 10 * processes:
        try:
            status = asyncio.run(_probe(port, _request("GET", "/v1/quotas/t1", key)))
            answered = answered + 1 if status == 200 else 0
            if answered:
                continue
        except OSError:
            answered = 0
        if time.monotonic() > deadline or any(p.poll() is not None for p in server.processes):
            server.stop()
            raise SystemExit("the API server did not start; see " + str(tmp / "api.log"))
        time.sleep(0.3)
    return server


async def _probe(port: int, request: bytes) -> int:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        return await _exchange(reader, writer, request)
    finally:
        writer.close()


def workloads(key: str) -> dict[str, list[bytes]]:
    """The closed-loop figures' requests, by figure name, sent with `key`."""
    single = [
        _request("POST", "/v1/events", key, orjson.dumps(_event(i)), "application/cloudevents+json")
        for i in range(20_000)
    ]
    batch = [  # one tenant per batch, as a gateway batching per tenant sends
        _request("POST", "/v1/events", key,
                 orjson.dumps([_event(b * 100 + i, f"t{b % 50}") for i in range(100)]),
                 "application/cloudevents-batch+json")
        for b in range(400)
    ]  # fmt: skip
    mixed = [  # 50 tenants in each batch: regrouped per tenant before decoding
        _request("POST", "/v1/events", key,
                 orjson.dumps([_event(b * 100 + i) for i in range(100)]),
                 "application/cloudevents-batch+json")
        for b in range(400, 800)
    ]  # fmt: skip
    return {"hello": [_request("GET", "/hello", key)], "single": single, "batch": batch,
            "mixed": mixed}  # fmt: skip


def run(
    kafka: KafkaSettings, tmp: Path, seconds: float = 6, connections: int = 32, rounds: int = 3
) -> dict[str, Any]:
    """The figures of one server process, and hello, single events and one-tenant
    batches again on two processes sharing the port (`_2p`), alternated in each round."""
    (tmp / "one").mkdir(parents=True, exist_ok=True)
    (tmp / "two").mkdir(parents=True, exist_ok=True)
    server = start_server(kafka, tmp / "one")
    pair = start_server(kafka, tmp / "two", processes=2)
    port, key = server.port, server.key
    try:
        loads = workloads(key)
        hello, single = loads["hello"], loads["single"]
        quota = _request("GET", "/v1/quotas/t1", key)
        asyncio.run(closed_loop(port, single, connections, 3))  # warm-up, uncounted
        asyncio.run(closed_loop(pair.port, workloads(pair.key)["single"], connections, 3))
        results: dict[str, Any] = {}
        figures = [(name, server, requests) for name, requests in loads.items()]
        figures += [
            (f"{name}_2p", pair, requests)
            for name, requests in workloads(pair.key).items()
            if name != "mixed"
        ]
        runs: dict[str, list[dict[str, float]]] = {name: [] for name, _, _ in figures}
        for round_ in range(rounds):  # alternated, so a noisy minute hits every figure
            for name, target, requests in figures:
                runs[name].append(
                    measured(target.pids, target.port, requests, connections, seconds)
                )
                print(f"  round {round_ + 1} {name}: {runs[name][-1]}", flush=True)
        for name, _, _ in figures:
            results[name] = {
                key: statistics.median(run[key] for run in runs[name]) for key in runs[name][0]
            }
            results[name]["rounds_per_s"] = [run["per_s"] for run in runs[name]]
        for name in ("batch", "mixed", "batch_2p"):
            results[name]["events_per_s"] = results[name]["per_s"] * 100
        for suffix in ("", "_2p"):
            shares = [
                s["per_s"] / h["per_s"]
                for s, h in zip(runs[f"single{suffix}"], runs[f"hello{suffix}"], strict=True)
            ]
            results[f"single{suffix}"]["of_hello"] = (
                results[f"single{suffix}"]["per_s"] / results[f"hello{suffix}"]["per_s"]
            )
            results[f"single{suffix}"]["of_hello_per_round"] = shares
        results["load_average"] = os.getloadavg()
        results["hello_at_1000"] = asyncio.run(open_loop(port, hello, 1000, seconds))
        results["quota_at_1000"] = asyncio.run(open_loop(port, [quota], 1000, seconds))
        print(f"  hello at 1000/s: {results['hello_at_1000']}", flush=True)
        print(f"  quota at 1000/s: {results['quota_at_1000']}", flush=True)
        return results
    finally:
        server.stop()
        pair.stop()


def serve_with_hello() -> None:
    """The server of `tokenops api serve`, plus GET /hello: the baseline of every figure."""
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    from tokenops.api.server import ServerSettings, serve
    from tokenops.api.settings import ApiSettings
    from tokenops.producers import ProducerSettings
    from tokenops.settings import StackSettings, TopicSettings, load
    from tokenops.sinks.clickhouse.settings import ClickHouseSettings

    async def hello(request: Any) -> PlainTextResponse:
        return PlainTextResponse("hello")

    config = ServerSettings(
        load(ApiSettings),
        load(KafkaSettings),
        load(ProducerSettings),
        load(TopicSettings),
        load(ClickHouseSettings),
        load(StackSettings),
    )
    serve(config, [Route("/hello", hello)])


def main() -> None:
    if sys.argv[1:] == ["--serve"]:
        serve_with_hello()
        return
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 6
    connections = int(sys.argv[2]) if len(sys.argv) > 2 else 32
    tmp = Path(tempfile.mkdtemp(prefix="tokenops-api-bench-"))
    with bench_kafka(tmp / "stack") as kafka:
        results = run(kafka, tmp, seconds, connections)
    print(orjson.dumps(results, option=orjson.OPT_INDENT_2).decode())


if __name__ == "__main__":
    main()
