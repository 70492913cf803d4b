"""POST /v1/events from a foreign client (the curl binary) on the real broker: every
CloudEvents mode lands on Kafka once acknowledged; bad input is refused whole, named."""

from __future__ import annotations

import subprocess
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.api_server import ApiServer, start_api
from tests.processes import TokenopsProcess
from tokenops.schemas import decode_record
from tokenops.settings import KafkaSettings
from tokenops.topics import read_to_end

pytestmark = pytest.mark.e2e
CLOUDEVENTS = "application/cloudevents+json"


def cloudevent(tenant: str = "acme", **data: Any) -> dict[str, Any]:
    now = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    fields = {"schema_version": 1, "tenant_id": tenant, "model": "gpt-4o", "provider": "openai"}
    fields |= {"input_tokens": 100, "output_tokens": 20} | data
    return {
        "specversion": "1.0",
        "type": "ai.tokenops.usage",
        "source": "//curl/test",
        "id": uuid.uuid4().hex,
        "time": now,
        "data": fields,
    }


def curl(
    api: ApiServer, body: bytes, headers: dict[str, str], key: str = "acme"
) -> tuple[int, Any]:
    """POST /v1/events with the curl binary: (status, JSON body)."""
    args = ["curl", "-s", "-o", "-", "-w", "\n%{http_code}", "-X", "POST", "--data-binary", "@-"]
    for name, value in {"Authorization": f"Bearer {api.keys[key]}", **headers}.items():
        args += ["-H", f"{name}: {value}"]
    done = subprocess.run(
        [*args, api.url + "/v1/events"], input=body, capture_output=True, check=True, timeout=30
    )
    text, _, status = done.stdout.rpartition(b"\n")
    return int(status), orjson.loads(text)


def stored(kafka: KafkaSettings, api: ApiServer) -> dict[str, int]:
    """input_tokens per event id of everything on the API's topic."""
    found: dict[str, int] = {}
    for message in read_to_end(kafka, api.env["TOKENOPS_PRODUCER_TOPIC"]):
        for event in decode_record(message.value(), message.headers()):
            found[event.id] = event.input_tokens
    return found


def test_curl_structured_batch_and_binary_modes_are_durable(
    api_server: ApiServer, kafka_settings: KafkaSettings
) -> None:
    single = cloudevent(input_tokens=1)
    posted = orjson.dumps(single, option=orjson.OPT_INDENT_2)  # not as the SDK writes it
    status, answer = curl(api_server, posted, {"Content-Type": "application/cloudevents+json"})
    assert (status, answer) == (200, {"accepted": 1, "durable": True})
    # alone in its record, the event is forwarded as the bytes the decoder accepted
    values = [
        m.value() for m in read_to_end(kafka_settings, api_server.env["TOKENOPS_PRODUCER_TOPIC"])
    ]
    assert values == [posted]

    batch = [cloudevent(input_tokens=2 + i) for i in range(3)]
    status, answer = curl(
        api_server, orjson.dumps(batch), {"Content-Type": "application/cloudevents-batch+json"}
    )
    assert (status, answer["accepted"]) == (200, 3)

    binary = cloudevent(input_tokens=9)
    headers = {f"ce-{name}": binary[name] for name in ("specversion", "type", "source", "id")}
    headers |= {"ce-time": binary["time"], "Content-Type": "application/json"}
    status, answer = curl(api_server, orjson.dumps(binary["data"]), headers)
    assert (status, answer["accepted"]) == (200, 1)

    # a 2xx means acknowledged: the events are on the topic already
    expected = {e["id"]: e["data"]["input_tokens"] for e in [single, *batch, binary]}
    assert stored(kafka_settings, api_server) == expected


def test_a_batch_with_bad_events_names_each_and_takes_none(
    api_server: ApiServer, kafka_settings: KafkaSettings
) -> None:
    batch = [cloudevent(), cloudevent(input_tokens=-1), cloudevent(), cloudevent(model="a b")]
    status, answer = curl(
        api_server, orjson.dumps(batch), {"Content-Type": "application/cloudevents-batch+json"}
    )
    assert status == 400
    assert answer["accepted"] == 0 and answer["all_or_none"] is True
    assert [(p["index"], p["field"]) for p in answer["problems"]] == [
        (1, "input_tokens"),
        (3, "model"),
    ]
    assert stored(kafka_settings, api_server) == {}  # the good events were not taken either


def test_a_key_writes_only_its_tenant_and_unknown_keys_are_refused(
    api_server: ApiServer, kafka_settings: KafkaSettings
) -> None:
    other = orjson.dumps([cloudevent("acme"), cloudevent("globex")])
    kind = {"Content-Type": "application/cloudevents-batch+json"}
    assert curl(api_server, other, kind, key="acme")[0] == 403
    status, _, _ = api_server.request("POST", "/v1/events", other, key=None, headers=kind)
    assert status == 401
    status, _, _ = api_server.request("POST", "/v1/events", other, key="tok_x_y", headers=kind)
    assert status == 401
    assert stored(kafka_settings, api_server) == {}
    assert curl(api_server, other, kind, key="admin")[0] == 200  # admin writes any tenant


def test_limits_and_foreign_hosts(api_server: ApiServer) -> None:
    kind = {"Content-Type": "application/cloudevents-batch+json"}
    big = b"[" + b" " * 5_000_000 + b"]"
    assert curl(api_server, big, kind)[0] == 413
    status, _, _ = api_server.request(
        "GET", "/healthz", key=None, headers={"Host": "attacker.example:80"}
    )
    assert status == 421
    status, _, body = api_server.request(
        "POST", "/v1/events", b"{}", headers={"Content-Type": "text/plain"}
    )
    assert status == 400 and orjson.loads(body)["problems"][0]["field"] == "content-type"
    gzip = {**kind, "Content-Encoding": "gzip"}
    assert api_server.request("POST", "/v1/events", b"\x1f\x8b", headers=gzip)[0] == 415
    protobuf = {"Content-Type": "application/x-protobuf"}
    status, _, body = api_server.request("POST", "/v1/traces", b"\xff\xff\xff", headers=protobuf)
    assert status == 400 and b"Traceback" not in body
    json = {"Content-Type": "application/json"}
    assert api_server.request("POST", "/v1/traces", b"[null, null]", headers=json)[0] == 400


def test_two_processes_share_the_port_with_reuse_port(
    kafka_settings: KafkaSettings, new_topic: Callable[..., str], tmp_path: Path
) -> None:
    """TOKENOPS_API_REUSE_PORT: a second `tokenops api serve` binds the first's port, the
    kernel gives each new connection to one of them, every 200 is on the topic, and
    the port keeps serving when either process stops."""
    first = start_api(
        kafka_settings, new_topic("api"), tmp_path, ["acme"], {"TOKENOPS_API_REUSE_PORT": "true"}
    )
    second = TokenopsProcess(["api", "serve"], first.env, tmp_path / "api-2.log")
    try:
        deadline = time.monotonic() + 60
        while "api listening" not in second.output():  # logged once its socket is bound
            assert time.monotonic() < deadline and second.proc.poll() is None, second.output()
            time.sleep(0.2)
        events = [cloudevent(input_tokens=i) for i in range(20)]
        for event in events[:10]:  # each curl is a new connection
            status, _ = curl(first, orjson.dumps(event), {"Content-Type": CLOUDEVENTS})
            assert status == 200
        first.process.stop()
        for event in events[10:]:
            status, _ = curl(first, orjson.dumps(event), {"Content-Type": CLOUDEVENTS})
            assert status == 200
        assert stored(kafka_settings, first) == {e["id"]: e["data"]["input_tokens"] for e in events}
    finally:
        second.stop()
        first.process.stop()
