"""Hostile and broken input against a real `tokenops worker`: the catalogue.

Each kind of bad record is produced to the usage topic, followed by a valid event of
the same tenant key (same partition). The bad record must reach the dead-letter topic
unchanged (above 512 KiB without its value, docs/streams.md) with its
`tokenops.dlq.reason` and `tokenops.dlq.field` headers, no event of
it may be counted, and the worker must keep running: the valid event after it is
counted. One worker process serves the whole catalogue (docs/reliability.md lists it).
"""

from __future__ import annotations

import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from confluent_kafka import Producer

from tests.e2e.worker_run import worker_env
from tests.processes import TokenopsProcess
from tokenops.deadletters import DLQ_FIELD, DLQ_OFFSET, DLQ_PARTITION, DLQ_REASON, DLQ_VALUE_BYTES
from tokenops.schemas import build_event
from tokenops.schemas.wire import encode_event, to_cloudevent
from tokenops.settings import KafkaSettings
from tokenops.stack.process import free_port
from tokenops.streams.deadletter import DEAD_LETTER_MAX_BYTES
from tokenops.topics import TopicSpec, ensure_topics, read_to_end

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]  # the first one starts the worker
TENANT = "hostile-acme"
COUNTED = 'tokenops_worker_events_total{outcome="counted"}'


def _now() -> datetime:
    return datetime.now(UTC)


def event(**changes: Any) -> dict[str, Any]:
    """A valid CloudEvent (as a dict) with `data` fields changed or (None) removed."""
    fields = {
        "id": f"ok-{uuid.uuid4().hex}",
        "source": "//node/hostile",
        "time": _now(),
        "tenant_id": TENANT,
        "model": "gpt-4o",
        "provider": "openai",
        "input_tokens": 100,
        "output_tokens": 10,
    }
    ce = to_cloudevent(build_event(fields))
    for name, value in changes.items():
        target = ce if name in ("id", "source", "time", "specversion", "type") else ce["data"]
        if value is None:
            del target[name]
        else:
            target[name] = value
    return ce


def raw(**changes: Any) -> bytes:
    return orjson.dumps(event(**changes))


def stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def batch(*events: dict[str, Any]) -> bytes:
    body = {"type": "ai.tokenops.usage.batch", "version": 1, "tenant_id": TENANT}
    return orjson.dumps({**body, "events": list(events)})


@dataclass(frozen=True)
class Bad:
    value: bytes | None
    field: str  # the tokenops.dlq.field header
    reason: str  # a part of the tokenops.dlq.reason header
    headers: tuple[tuple[str, bytes], ...] = ()
    warm_up: bool = False  # a valid event first, so the partition has a watermark


VALID = raw()
CATALOGUE: dict[str, Bad] = {
    # malformed bytes
    "truncated-json": Bad(VALID[:-9], "record", "not UTF-8 JSON"),
    "not-json-at-all": Bad(b"\x00\x01binary garbage", "record", "not UTF-8 JSON"),
    "not-utf8": Bad(VALID.replace(b"hostile", b"host\xff\xfeile"), "record", "not UTF-8"),
    "empty-value": Bad(b"", "record", "not UTF-8 JSON"),
    "null-value-tombstone": Bad(None, "record", "must be bytes"),
    "json-array": Bad(b"[1, 2, 3]", "record", "must be a JSON object"),
    "nan-literal": Bad(VALID.replace(b'"input_tokens":100', b'"input_tokens":NaN'), "record",
                       "not UTF-8 JSON"),
    # a key twice: readers disagree on which value wins, so none may pick (orjson: the last)
    "duplicate-key": Bad(VALID.replace(b'"input_tokens":100', b'"input_tokens":100,'
                                       b'"input_tokens":1'), "duplicate_key", "appears twice"),
    "unknown-content-type": Bad(VALID, "content-type", "unknown content type",
                                headers=(("content-type", b"text/csv"),)),
    # wrong types
    "string-tokens": Bad(raw(output_tokens="10"), "output_tokens", "must be an integer"),
    "float-tokens": Bad(raw(input_tokens=1.5), "input_tokens", "must be an integer"),
    "bool-tokens": Bad(raw(input_tokens=True), "input_tokens", "must be an integer"),
    "number-tenant": Bad(raw(tenant_id=42), "tenant_id", "must be a string"),
    "data-not-object": Bad(orjson.dumps({**event(), "data": "x"}), "data", "JSON object"),
    # negative and absurd counts
    "negative-tokens": Bad(raw(input_tokens=-1), "input_tokens", "from 0 to"),
    "absurd-tokens": Bad(raw(output_tokens=10**12), "output_tokens", "from 0 to"),
    # orjson reads an integer beyond 64 bits as a float (1e30): still not a count
    "beyond-64-bit-tokens": Bad(VALID.replace(b'"input_tokens":100', b'"input_tokens":'
                                              + b"9" * 30), "input_tokens", "must be an integer"),
    # versions and missing fields
    "unknown-schema-version": Bad(raw(schema_version=99), "schema_version", "unknown schema"),
    "missing-schema-version": Bad(raw(schema_version=None), "schema_version", "required"),
    "wrong-specversion": Bad(raw(specversion="0.3"), "specversion", "must be '1.0'"),
    "missing-tenant": Bad(raw(tenant_id=None), "tenant_id", "is required"),
    "missing-model": Bad(raw(model=None), "model", "is required"),
    "missing-id": Bad(raw(id=None), "id", "is required"),
    "missing-tokens": Bad(raw(input_tokens=None), "input_tokens", "is required"),
    "unknown-batch-version": Bad(orjson.dumps({"type": "ai.tokenops.usage.batch", "version": 7,
                                               "tenant_id": TENANT, "events": [event()]}),
                                 "batch", "unknown batch version"),
    "batch-with-one-bad-event": Bad(batch(event(), event(), event(input_tokens=-5)),
                                    "input_tokens", "events[2]"),
    "batch-mixing-tenants": Bad(batch(event(), event(tenant_id="other-tenant")), "tenant_id",
                                "differs from the batch"),
    # oversized
    "oversized-event": Bad(b"{" + b" " * 9000 + VALID[1:], "record", "event exceeds 8192"),
    "oversized-record": Bad(batch(event()).replace(b"{", b"{" + b" " * 1_010_000, 1), "record",
                            "record exceeds 1000000"),
    # timestamps
    "future-time": Bad(raw(time=stamp(_now() + timedelta(days=1))), "future", "in the future"),
    "ancient-time": Bad(raw(time="1999-12-31T23:59:59.000Z"), "time", "before 2020-01-01"),
    "before-dedup-horizon": Bad(raw(time=stamp(_now() - timedelta(hours=2))), "time",
                                "too_late", warm_up=True),
    "not-a-time": Bad(raw(time="yesterday"), "time", "RFC 3339"),
    # identifiers carrying SQL / PromQL / exposition metacharacters
    "sql-in-tenant": Bad(raw(tenant_id="a'; DROP TABLE x; --"), "tenant_id", "does not match"),
    "sql-comment-in-model": Bad(raw(model="gpt-4o/**/OR/**/1=1"), "model", "does not match"),
    "promql-in-tenant": Bad(raw(tenant_id='acme"} or vector(1) #'), "tenant_id", "does not match"),
    "label-newline-in-tenant": Bad(raw(tenant_id='acme\ntokenops_fake_total{tenant="x"} 1'),
                                   "tenant_id", "does not match"),
    "backslash-in-model": Bad(raw(model='gpt\\"4o'), "model", "does not match"),
    "pipe-in-tenant": Bad(raw(tenant_id="acme|evil"), "tenant_id", "does not match"),
    "nul-in-tenant": Bad(raw(tenant_id="acme\x00"), "tenant_id", "does not match"),
    "control-in-source": Bad(raw(source="//node/\x1b[31m"), "source", "does not match"),
    # unicode look-alikes
    "cyrillic-a-tenant": Bad(raw(tenant_id="\u0430cme"), "tenant_id", "does not match"),
    "fullwidth-tenant": Bad(raw(tenant_id="\uff41\uff43\uff4d"), "tenant_id", "does not match"),
    "zero-width-tenant": Bad(raw(tenant_id="ac\u200bme"), "tenant_id", "does not match"),
    "rtl-override-model": Bad(raw(model="gpt\u202e4o"), "model", "does not match"),
    "combining-accent-tenant": Bad(raw(tenant_id="acme\u0301"), "tenant_id", "does not match"),
}  # fmt: skip


class Worker:
    """One `tokenops worker` for the module, in its own folder, with its own topics."""

    def __init__(self, kafka: KafkaSettings, tmp: Path) -> None:
        suffix = uuid.uuid4().hex[:8]
        self.topics = {
            name: f"hostile-{name}-{suffix}"
            for name in ("usage", "aggregates", "dead_letter", "quota_alerts", "quotas")
        }
        ensure_topics(
            kafka, [TopicSpec(t, 1 if n == "quotas" else 2, 1, {}) for n, t in self.topics.items()]
        )
        self.port = free_port()
        env = {
            **worker_env(kafka, self.topics, f"hostile-{suffix}", tmp),
            "TOKENOPS_WORKER_STATE_DIR": str(tmp / "state"),
            "TOKENOPS_WORKER_HTTP_PORT": str(self.port),
        }
        self.log = tmp / "worker.log"
        self.process = TokenopsProcess(["worker"], env, self.log, grace_s=10.0)
        self.proc = self.process.proc
        self.kafka = kafka
        # message.max.bytes: librdkafka's own 1 MB cap would refuse the oversized record.
        self.producer = Producer({**kafka.librdkafka(), "message.max.bytes": 2_000_000})

    def get(self, path: str) -> str:
        url = f"http://127.0.0.1:{self.port}{path}"
        with urllib.request.urlopen(url, timeout=3) as response:
            return str(response.read().decode())

    def counted(self) -> float:
        for line in self.get("/metrics").splitlines():
            if line.startswith(COUNTED + " "):
                return float(line.split()[-1])
        return 0.0

    def wait(self, check: Callable[[], bool], what: str, timeout_s: float = 60) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, "worker died:\n" + self.log.read_text()[-3000:]
            try:
                if check():
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"{what} within {timeout_s} s:\n" + self.log.read_text()[-2000:])

    def send(
        self, value: bytes | None, headers: tuple[tuple[str, bytes], ...] = ()
    ) -> tuple[int, int]:
        """Produce one record (key: the tenant); returns its partition and offset."""
        done: list[Any] = []
        self.producer.produce(
            self.topics["usage"],
            value,
            key=TENANT.encode(),
            headers=list(headers) or None,
            on_delivery=lambda err, msg: done.append((err, msg)),
        )
        self.producer.flush(10)
        err, msg = done[0]
        assert err is None, err
        return int(msg.partition()), int(msg.offset())

    def dead_letter(self, partition: int, offset: int) -> dict[str, bytes] | None:
        for m in read_to_end(self.kafka, self.topics["dead_letter"]):
            headers = dict(m.headers() or [])
            if (headers[DLQ_PARTITION], headers[DLQ_OFFSET]) == (b"%d" % partition, b"%d" % offset):
                return {**headers, "value": m.value() or b""}
        return None


@pytest.fixture(scope="module")
def worker(
    kafka_settings: KafkaSettings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Worker]:
    w = Worker(kafka_settings, tmp_path_factory.mktemp("hostile"))
    try:
        w.wait(lambda: w.get("/healthz") is not None, "worker ready", timeout_s=90)
        yield w
    finally:
        w.producer.flush(5)
        w.process.stop()


@pytest.mark.parametrize("kind", list(CATALOGUE))
def test_bad_record_is_dead_lettered_with_its_reason_and_the_worker_keeps_counting(
    worker: Worker, kind: str
) -> None:
    bad = CATALOGUE[kind]
    if bad.warm_up:
        before = worker.counted()
        worker.send(encode_event(build_event({**_fields(), "id": f"warm-{kind}"})))
        worker.wait(lambda: worker.counted() == before + 1, "warm-up event counted")
    before = worker.counted()
    partition, offset = worker.send(bad.value, bad.headers)
    worker.send(encode_event(build_event({**_fields(), "id": f"after-{kind}"})))

    found: list[dict[str, bytes]] = []

    def dead_lettered() -> bool:
        letter = worker.dead_letter(partition, offset)
        if letter is not None:
            found.append(letter)
        return letter is not None

    worker.wait(dead_lettered, f"{kind} dead-lettered")
    letter = found[0]
    assert letter[DLQ_FIELD].decode() == bad.field, letter[DLQ_REASON]
    assert bad.reason in letter[DLQ_REASON].decode(), letter[DLQ_REASON]
    kept = bad.value or b""
    if len(kept) > DEAD_LETTER_MAX_BYTES:  # too large to keep: its size, and where it is
        assert letter[DLQ_VALUE_BYTES] == b"%d" % len(kept)
        kept = b""
    assert letter["value"] == kept, "the dead letter must keep the record's bytes"
    worker.wait(lambda: worker.counted() >= before + 1, "the valid event after it counted")
    assert worker.counted() == before + 1, "only the valid event may be counted"
    assert worker.proc.poll() is None


def _fields() -> dict[str, Any]:
    return {
        "id": f"ok-{uuid.uuid4().hex}",
        "source": "//node/hostile",
        "time": _now(),
        "tenant_id": TENANT,
        "model": "gpt-4o",
        "provider": "openai",
        "input_tokens": 7,
        "output_tokens": 3,
    }
