"""The API's pure parts: the keys file, OTLP span mapping, binary mode, the Host check,
the durability rounds' sharing."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from prometheus_client import CollectorRegistry

from tokenops.api.app import HostCheck, create_app
from tokenops.api.keys import ApiKeyError, KeyStore, new_key, read_entries, revoke_key
from tokenops.api.settings import ApiSettings
from tokenops.api.state import ApiMetrics, ApiState
from tokenops.producers import SpoolError
from tokenops.producers.http import (
    DurableSender,
    IngestRejectedError,
    NotDurableError,
    decode_body,
    spans_to_events,
)
from tokenops.producers.tickets import Ticket


def test_keys_are_hashed_scoped_rotatable_and_refused_when_shared(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    key_id, key = new_key(path, "acme")
    _, admin = new_key(path, None)
    assert os.stat(path).st_mode & 0o777 == 0o600
    assert key not in path.read_text() and admin not in path.read_text()
    store = KeyStore(path, check_every_s=0)
    found = store.lookup(key)
    assert found is not None and found.may_access("acme") and not found.may_access("globex")
    assert not found.may_access("ÄÖ")  # any text, never an exception
    found_admin = store.lookup(admin)
    assert found_admin is not None and found_admin.may_access("globex")
    assert revoke_key(path, key_id) and store.lookup(key) is None  # re-read on change
    assert store.lookup(admin) is not None
    path.chmod(0o644)
    with pytest.raises(ApiKeyError, match="chmod 600"):
        read_entries(path)
    with pytest.raises(ApiKeyError):
        new_key(path, "bad tenant")


def _attribute(key: str, value: object) -> KeyValue:
    if isinstance(value, int):
        return KeyValue(key=key, value=AnyValue(int_value=value))
    return KeyValue(key=key, value=AnyValue(string_value=str(value)))


def test_genai_span_mapping_old_and_new_names() -> None:
    request = ExportTraceServiceRequest()
    spans = request.resource_spans.add().scope_spans.add().spans
    attributes = [
        {"gen_ai.system": "anthropic", "gen_ai.request.model": "claude",
         "gen_ai.usage.prompt_tokens": 7, "gen_ai.usage.completion_tokens": 3},
        {"gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-4o-mini",
         "gen_ai.response.model": "gpt-4o", "gen_ai.usage.input_tokens": 10,
         "gen_ai.usage.output_tokens": 4, "gen_ai.usage.cache_read.input_tokens": 2,
         "gen_ai.usage.reasoning.output_tokens": 1, "gen_ai.operation.name": "embeddings"},
        {"http.method": "GET"},
    ]  # fmt: skip
    for n, pairs in enumerate(attributes):
        span = spans.add(trace_id=bytes(16) + b"", span_id=bytes([n + 1]) * 8)
        span.end_time_unix_nano = 1_780_000_000_123_456_789
        span.attributes.extend(_attribute(k, v) for k, v in pairs.items())
    result = spans_to_events(request, lambda resource: "acme")
    assert (result.events, result.ignored_spans, result.rejected_spans) == (2, 1, 0)
    [part] = result.parts
    assert part.model == ["claude", "gpt-4o"] and part.provider == ["anthropic", "openai"]
    assert part.input_tokens == [7, 10] and part.cache_read_input_tokens == [0, 2]
    assert part.reasoning_output_tokens == [0, 1] and part.operation == ["chat", "embeddings"]
    assert part.id[1] == "00" * 16 + "02" * 8 and part.time_ms == [1_780_000_000_123] * 2


def test_binary_mode_keeps_the_body_bytes_for_the_decoder() -> None:
    headers = {"ce-specversion": "1.0", "ce-type": "ai.tokenops.usage", "ce-source": "//n",
               "ce-id": "a1", "ce-time": "2026-01-01T00:00:00Z"}  # fmt: skip
    body = (
        b'{"schema_version": 1, "tenant_id": "acme", "model": "m", "provider": "p",'
        b' "input_tokens": 1, "output_tokens": 1, "input_tokens": 5}'
    )
    with pytest.raises(IngestRejectedError) as rejected:
        decode_body(body, "application/json", headers)
    assert rejected.value.problems[0].field == "duplicate_key"


def test_batch_mode_refuses_a_key_twice_and_splits_tenants_in_one_pass() -> None:
    """A batch is parsed once and checked by the decoder's rules: a key twice in one
    event is refused (it was re-encoded without one of them and taken), and a batch of
    two tenants comes back as one part per tenant, in the order they first appear."""
    now = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())

    def event(i: int, tenant: str) -> dict[str, Any]:
        data = {"schema_version": 1, "tenant_id": tenant, "model": "m", "provider": "p",
                "input_tokens": i, "output_tokens": 1}  # fmt: skip
        return {"specversion": "1.0", "type": "ai.tokenops.usage", "source": "//n",
                "id": f"e{i}", "time": now, "data": data}  # fmt: skip

    body = orjson.dumps([event(1, "b"), event(2, "a"), event(3, "b")])
    parts = decode_body(body, "application/cloudevents-batch+json", {})
    assert [(p.tenant_id, p.id, p.input_tokens) for p in parts] == [
        ("b", ["e1", "e3"], [1, 3]),
        ("a", ["e2"], [2]),
    ]
    twice = body.replace(b'"model":', b'"model":"x","model":', 1)
    with pytest.raises(IngestRejectedError) as rejected:
        decode_body(twice, "application/cloudevents-batch+json", {})
    assert [p.to_json() for p in rejected.value.problems] == [
        {"index": None, "field": "duplicate_key", "reason": "appears twice in one JSON object"}
    ]


def test_host_check_verdicts_are_cached_but_bounded_and_use_the_last_host() -> None:
    """The Host check answers from a cache of verdicts; a client sending a new Host on
    every request cannot grow it without bound, and a refused Host stays refused."""
    served: list[bytes | None] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        served.append(dict(scope["headers"]).get(b"host"))

    async def status_of(check: HostCheck, *hosts: bytes) -> int:
        sent: list[dict[str, Any]] = []

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        scope = {"type": "http", "headers": [(b"host", h) for h in hosts]}
        await check(scope, None, send)
        return int(sent[0]["status"]) if sent else 200

    async def main() -> None:
        check = HostCheck(app, frozenset())
        for i in range(1000):
            assert await status_of(check, b"rebind%d.attacker.example" % i) == 421
            assert await status_of(check, b"127.0.0.1:8480") == 200
        assert len(check.verdicts) <= 256
        # two Host headers: the last decides, as before the cache
        assert await status_of(check, b"127.0.0.1", b"evil.example") == 421
        assert await status_of(check, b"evil.example", b"localhost") == 200

    asyncio.run(main())
    assert len(served) == 1001


def test_a_revoked_key_stops_working_at_the_next_look_at_the_file(tmp_path: Path) -> None:
    """Keys are looked up by their hash on every request (SHA-256 of a short string costs
    well under a microsecond), so no plaintext key is kept between requests."""
    path = tmp_path / "keys.json"
    key_id, key = new_key(path, "acme")
    store = KeyStore(path, check_every_s=0)
    assert all(store.lookup(key) is not None for _ in range(3))
    assert store.lookup("tok_guess_1") is None
    assert revoke_key(path, key_id) and store.lookup(key) is None


class _TicketedProducer:
    """Stands in for UsageProducer's two calls DurableSender makes: `send_columns` keeps
    each request's ticket, and the test resolves them (from another thread, as the
    producer's poll thread does), so it decides when each request's records are durable."""

    def __init__(self) -> None:
        self.tickets: list[Ticket] = []
        self.releases = 0

    def send_columns(self, parts: Any, ticket: Ticket, encoded: bytes | None = None) -> int:
        ticket.records += 1  # one record holds the request's events
        self.tickets.append(ticket)
        return len(parts)

    def produce_buffered(self) -> None:
        self.releases += 1

    def resolve(self, at: int, error: BaseException | None = None) -> None:
        """Resolve ticket `at` in another thread; what it raised there is raised here."""
        raised: list[BaseException] = []

        def resolve() -> None:
            try:
                self.tickets[at].resolved(error)
            except BaseException as exc:
                raised.append(exc)

        thread = threading.Thread(target=resolve)
        thread.start()
        thread.join()
        if raised:
            raise raised[0]


def test_durable_sender_answers_each_request_when_its_own_records_are_durable() -> None:
    """A request waits for its own records, not for a round of everything before it:
    requests of one loop turn share one release of the buffers, a later one can be
    answered first, a cancelled one cancels only itself, a lost record is its error,
    and a record never confirmed is a NotDurableError at the timeout."""

    async def scenario() -> None:
        producer = _TicketedProducer()
        sender = DurableSender(producer, timeout_s=0.5)  # type: ignore[arg-type]
        first = [asyncio.create_task(sender.send([object()])) for _ in range(3)]
        await asyncio.sleep(0.01)
        assert producer.releases == 1  # one turn, one release for the three
        later = asyncio.create_task(sender.send([object()]))
        lost = asyncio.create_task(sender.send([object()]))
        unconfirmed = asyncio.create_task(sender.send([object()]))
        await asyncio.sleep(0.01)
        producer.resolve(3)  # the later request's record is acknowledged first
        assert await later == 1 and not any(task.done() for task in first)
        first[0].cancel()  # a client gone while its record is in flight
        for at in (0, 1, 2):
            producer.resolve(at)
        assert await asyncio.gather(*first[1:]) == [1, 1]
        assert first[0].cancelled()
        producer.resolve(4, SpoolError(Path("spool.log"), "disk full"))
        with pytest.raises(SpoolError):
            await lost
        with pytest.raises(NotDurableError):
            await unconfirmed

    asyncio.run(scenario())


def test_a_ticket_resolved_after_the_server_loop_closed_raises_nothing() -> None:
    """At shutdown the producer's close delivers what is left; a request that timed out
    before has no loop any more, and its ticket must not break the delivery report."""
    producer = _TicketedProducer()

    async def timed_out() -> None:
        sender = DurableSender(producer, timeout_s=0.01)  # type: ignore[arg-type]
        with pytest.raises(NotDurableError):
            await sender.send([object()])

    asyncio.run(timed_out())  # closes its loop
    producer.resolve(0)  # in another thread, as close() would: no RuntimeError


def test_the_events_endpoint_answers_as_the_route_did_without_starlette(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """POST /v1/events is served straight from ASGI (`HotRoutes`): a body sent in
    several messages is read whole and answered once durable, one above the limit is
    413 while it streams, a client gone before its body takes nothing, another method
    is Starlette's 405, and an unexpected error is an opaque 500 whose id is logged."""
    keys = tmp_path / "keys.json"
    _, key = new_key(keys, "acme")
    registry = CollectorRegistry()
    producer = _TicketedProducer()
    state = ApiState(
        settings=ApiSettings(keys_file=keys, max_body_bytes=1024),
        keys=KeyStore(keys),
        sender=DurableSender(producer, timeout_s=5),  # type: ignore[arg-type]
        registry=registry,
        metrics=ApiMetrics(registry),
    )
    app = create_app(state)
    now = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())
    event = orjson.dumps(
        {"specversion": "1.0", "type": "ai.tokenops.usage", "source": "//n", "id": "e1",
         "time": now, "data": {"schema_version": 1, "tenant_id": "acme", "model": "m",
                               "provider": "p", "input_tokens": 1, "output_tokens": 1}}
    )  # fmt: skip

    async def call(method: str, messages: list[dict[str, Any]]) -> tuple[int, bytes]:
        sent: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            return messages.pop(0)

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        headers = [(b"host", b"127.0.0.1"), (b"authorization", b"Bearer " + key.encode()),
                   (b"content-type", b"application/cloudevents+json")]  # fmt: skip
        scope = {"type": "http", "method": method, "path": "/v1/events", "headers": headers,
                 "query_string": b"", "root_path": ""}  # fmt: skip
        task = asyncio.create_task(app(scope, receive, send))
        while not task.done():
            await asyncio.sleep(0.005)
            for ticket in producer.tickets:
                if ticket.records:
                    ticket.resolved(None)  # durable
        await task
        if not sent:
            return 0, b""
        return int(sent[0]["status"]), b"".join(m.get("body", b"") for m in sent[1:])

    def chunks(body: bytes, size: int) -> list[dict[str, Any]]:
        parts = [body[at : at + size] for at in range(0, len(body), size)]
        return [{"type": "http.request", "body": part, "more_body": n < len(parts) - 1}
                for n, part in enumerate(parts)]  # fmt: skip

    async def scenario() -> None:
        assert await call("POST", chunks(event, 50)) == (200, b'{"accepted":1,"durable":true}')
        status, body = await call("POST", chunks(b"[" + b" " * 2000 + b"]", 100))
        assert status == 413 and orjson.loads(body) == {"error": "body exceeds 1024 bytes"}
        assert await call("POST", [{"type": "http.disconnect"}]) == (0, b"")
        assert (await call("GET", []))[0] == 405
        assert len(producer.tickets) == 1  # only the first request reached the producer

        def broken(parts: Any, ticket: Ticket, encoded: bytes | None) -> int:
            raise RuntimeError("internal detail password=hunter2")

        producer.send_columns = broken  # type: ignore[method-assign]
        status, body = await call("POST", chunks(event, 4096))
        answer = orjson.loads(body)
        assert status == 500 and answer.keys() == {"error", "error_id"}
        assert b"hunter2" not in body and answer["error_id"] in caplog.text

    asyncio.run(scenario())
