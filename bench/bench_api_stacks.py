"""Which web stack for `tokenops api`: frameworks x servers, same routes, same client, one run.

`python -m bench.bench_api_stacks [seconds] [connections]` starts, one after the other,
one server process per stack, each serving the same two routes, and drives each with
the same keep-alive HTTP/1.1 client (bench_api.closed_loop, in this process):

- `GET /hello`: a fixed text body, the stack's ceiling;
- `POST /ingest`: one CloudEvent in structured mode, decoded and validated by
  `decode_body` (the decoder `POST /v1/events` uses), answered with the accepted count;
  no Kafka, so the figure is the stack plus our decoder.

Stacks: Starlette, FastAPI and Litestar, each on uvicorn (asyncio loop + h11, the
defaults without `uvicorn[standard]`), on uvicorn with uvloop + httptools, and on granian
(Rust HTTP, ASGI interface). Rounds alternate the stacks, so drift in the shared
machine's load spreads over all of them; medians of the rounds are reported.

Then, in this process and on one core, the hot path's decoding alone, CPU time per
event: our decoder (`decode_body`) against msgspec and pydantic validating the same
CloudEvent shape (types only: neither applies our rules, so they are a floor).
"""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import time
from typing import Any

import msgspec
import orjson
from fastapi import FastAPI
from litestar import Litestar, MediaType, get, post
from litestar import Request as LitestarRequest
from litestar.response import Response as LitestarResponse
from pydantic import TypeAdapter, create_model
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from bench.bench_api import _event, _probe, closed_loop
from tokenops.stack.process import free_port

FRAMEWORKS = ("starlette", "fastapi", "litestar")
SERVERS = ("uvicorn", "uvicorn-uvloop", "granian")
KIND = "application/cloudevents+json"


def _ingest(body: bytes, content_type: str) -> bytes:
    from tokenops.producers.http import IngestRejectedError, decode_body

    try:
        parts = decode_body(body, content_type, {})
    except IngestRejectedError as rejected:
        return orjson.dumps({"error": rejected.message})
    return orjson.dumps({"accepted": sum(len(p) for p in parts)})


def build_app(framework: str) -> Any:
    """The two routes in `framework`'s own idiom (what an app of ours would write).
    The frameworks' names are imported at module level: FastAPI and Litestar resolve
    the handlers' annotations there."""
    if framework == "starlette":

        async def hello(request: Request) -> Response:
            return PlainTextResponse("hello")

        async def ingest(request: Request) -> Response:
            body = _ingest(await request.body(), request.headers.get("content-type", ""))
            return Response(body, media_type="application/json")

        return Starlette(
            routes=[Route("/hello", hello), Route("/ingest", ingest, methods=["POST"])]
        )
    if framework == "fastapi":
        app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)

        @app.get("/hello")
        async def fast_hello() -> PlainTextResponse:
            return PlainTextResponse("hello")

        @app.post("/ingest")
        async def fast_ingest(request: Request) -> Response:
            body = _ingest(await request.body(), request.headers.get("content-type", ""))
            return Response(body, media_type="application/json")

        return app
    if framework == "litestar":

        @get("/hello", media_type=MediaType.TEXT)
        async def lite_hello() -> str:
            return "hello"

        @post("/ingest", status_code=200)
        async def lite_ingest(request: LitestarRequest[Any, Any, Any]) -> LitestarResponse[bytes]:
            body = _ingest(await request.body(), request.headers.get("content-type", ""))
            return LitestarResponse(body, media_type=MediaType.JSON)

        return Litestar([lite_hello, lite_ingest], openapi_config=None)
    raise ValueError(framework)


def app_from_env() -> Any:
    """granian's factory: the framework comes from the environment."""
    return build_app(os.environ["BENCH_FRAMEWORK"])


def serve(framework: str, server: str, port: int) -> None:
    if server == "granian":
        from granian import Granian
        from granian.constants import Interfaces

        os.environ["BENCH_FRAMEWORK"] = framework
        Granian(
            "bench.bench_api_stacks:app_from_env",
            factory=True,
            address="127.0.0.1",
            port=port,
            interface=Interfaces.ASGI,
            workers=1,
            log_enabled=False,
        ).serve()
        return
    import uvicorn

    fast = server == "uvicorn-uvloop"
    uvicorn.run(
        build_app(framework),
        host="127.0.0.1",
        port=port,
        loop="uvloop" if fast else "asyncio",
        http="httptools" if fast else "h11",
        log_config=None,
        access_log=False,
        server_header=False,
    )


def _request(method: str, path: str, body: bytes = b"") -> bytes:
    head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    if body:
        head += f"Content-Type: {KIND}\r\nContent-Length: {len(body)}\r\n"
    return head.encode() + b"\r\n" + body


def measure_stack(
    framework: str, server: str, seconds: float, connections: int
) -> dict[str, float]:
    port = free_port()
    command = [sys.executable, "-m", "bench.bench_api_stacks", "--serve", framework, server]
    process = subprocess.Popen([*command, str(port)], stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if asyncio.run(_probe(port, _request("GET", "/hello"))) == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline or process.poll() is not None:
                raise SystemExit(f"{framework} on {server} did not start")
            time.sleep(0.2)
        hello = [_request("GET", "/hello")]
        ingest = [_request("POST", "/ingest", orjson.dumps(_event(i))) for i in range(5000)]
        asyncio.run(closed_loop(port, ingest, connections, 1))  # warm-up, uncounted
        result = {}
        for name, requests in (("hello", hello), ("ingest", ingest)):
            figure = asyncio.run(closed_loop(port, requests, connections, seconds))
            if figure["errors"]:
                raise SystemExit(f"{framework} on {server}: {figure['errors']} errors on {name}")
            result[name] = figure["per_s"]
        return result
    finally:
        process.terminate()
        process.wait(30)


# The CloudEvent shape of the bench events, written once, as msgspec and pydantic types.
DATA_FIELDS: dict[str, type] = {
    "schema_version": int,
    "tenant_id": str,
    "model": str,
    "provider": str,
    "input_tokens": int,
    "output_tokens": int,
}
EVENT_FIELDS: dict[str, type] = {
    "specversion": str,
    "type": str,
    "source": str,
    "id": str,
    "time": str,
}
MsData = msgspec.defstruct("MsData", list(DATA_FIELDS.items()))
MsEvent = msgspec.defstruct("MsEvent", [*EVENT_FIELDS.items(), ("data", MsData)])
PyData = create_model("PyData", **{n: (t, ...) for n, t in DATA_FIELDS.items()})  # type: ignore[call-overload]
PyEvent = create_model(  # type: ignore[call-overload]
    "PyEvent", **{n: (t, ...) for n, t in EVENT_FIELDS.items()}, data=(PyData, ...)
)


def decoders(events: int = 100, rounds: int = 5) -> dict[str, float]:
    """CPU microseconds per event of each decoder on the same bodies, one core."""
    from tokenops.producers.http import decode_body

    single = [orjson.dumps(_event(i)) for i in range(2000)]
    batch = [orjson.dumps([_event(b * events + i, "t1") for i in range(events)]) for b in range(40)]
    ms_one, ms_many = msgspec.json.Decoder(MsEvent), msgspec.json.Decoder(list[MsEvent])
    py_one, py_many = TypeAdapter(PyEvent), TypeAdapter(list[PyEvent])
    batch_kind = "application/cloudevents-batch+json"
    cases = {
        "single: decode_body (ours)": (lambda b: decode_body(b, KIND, {}), single, 1),
        "single: msgspec Struct": (ms_one.decode, single, 1),
        "single: pydantic TypeAdapter.validate_json": (py_one.validate_json, single, 1),
        "batch: decode_body (ours)": (lambda b: decode_body(b, batch_kind, {}), batch, events),
        "batch: msgspec Struct": (ms_many.decode, batch, events),
        "batch: pydantic TypeAdapter.validate_json": (py_many.validate_json, batch, events),
    }
    samples: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(rounds):
        for name, (decode, bodies, per_body) in cases.items():
            started = time.process_time()
            for body in bodies:
                decode(body)
            elapsed = time.process_time() - started
            samples[name].append(elapsed / (len(bodies) * per_body) * 1e6)
    return {name: statistics.median(values) for name, values in samples.items()}


def main() -> None:
    if sys.argv[1:2] == ["--serve"]:
        serve(sys.argv[2], sys.argv[3], int(sys.argv[4]))
        return
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 4
    connections = int(sys.argv[2]) if len(sys.argv) > 2 else 32
    rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 3
    stacks = [(f, s) for s in SERVERS for f in FRAMEWORKS]
    samples: dict[tuple[str, str], dict[str, list[float]]] = {
        stack: {"hello": [], "ingest": []} for stack in stacks
    }
    for round_ in range(rounds):
        for framework, server in stacks:
            figure = measure_stack(framework, server, seconds, connections)
            for name, value in figure.items():
                samples[(framework, server)][name].append(value)
            print(f"  round {round_ + 1} {framework} on {server}: {figure}", flush=True)
    base = statistics.median(samples[("starlette", "uvicorn")]["hello"])
    print("\n| Stack | `GET /hello` req/s | single-event ingest req/s | ingest / hello |"
          " hello vs Starlette on uvicorn |\n|---|---:|---:|---:|---:|")  # fmt: skip
    for framework, server in stacks:
        hello = statistics.median(samples[(framework, server)]["hello"])
        ingest = statistics.median(samples[(framework, server)]["ingest"])
        print(f"| {framework} on {server} | {hello:,.0f} | {ingest:,.0f} |"
              f" {ingest / hello:.2f} | {hello / base:.2f} |")  # fmt: skip
    print("\n| Decoder (one core) | CPU µs per event |\n|---|---:|")
    for name, micros in decoders().items():
        print(f"| {name} | {micros:.1f} |")


if __name__ == "__main__":
    main()
