"""The SDK's columnar path: validation to columns, per-tenant column buffers, v2 records.

The reference is the per-event path: `encode_fields` (validation, errors) and
`UsageEvent` (the event). Whatever the SDK sends must decode, with the contract's
`decode_record`, to exactly the events it was given, per tenant in the order given.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from tests.unit.test_event_contract import FIELD_NAMES, NOW_MS, SKEW_S, junk, valid_fields
from tokenops.producers import ProducerSettings, UsageProducer
from tokenops.producers.batcher import (
    ENVELOPE_BYTES,
    MAX_PRODUCED_BYTES,
    WORST_EVENT_BYTES,
    TenantBatches,
    columns_record,
)
from tokenops.schemas import (
    CLOUDEVENTS_CONTENT_TYPE,
    COLUMNS_CONTENT_TYPE,
    CONTENT_TYPE_HEADER,
    EventColumns,
    InvalidEventError,
    UsageEvent,
    decode_record,
    encode_columns,
)
from tokenops.schemas.columns import columns_many, event_row, fields_row
from tokenops.schemas.event import EPOCH, MAX_ATTRIBUTES_BYTES, MAX_TOKENS, ONE_MS
from tokenops.schemas.rules import quick_row
from tokenops.schemas.signing import SIGNATURE_HEADER, Keyring, SigningKey
from tokenops.schemas.wire import encode_fields, format_ms, format_time, format_times
from tokenops.settings import KafkaSettings

EARLIEST_MS = 1_577_836_800_000  # 2020-01-01
LATEST_MS = NOW_MS + int(SKEW_S * 1000)
Record = tuple[str, bytes]


def reference_events(items: list[dict[str, Any]]) -> dict[str, list[UsageEvent]]:
    """What the per-event path makes of these fields, by tenant, in order."""
    by_tenant: dict[str, list[UsageEvent]] = {}
    for fields in items:
        tenant, value = encode_fields(fields, max_future_skew_s=SKEW_S)
        by_tenant.setdefault(tenant, []).extend(decode_record(value, None, now_ms=NOW_MS))
    return by_tenant


def decoded(records: list[EventColumns]) -> dict[str, list[UsageEvent]]:
    """The events of the records the batcher made, by tenant, checking each record's form."""
    by_tenant: dict[str, list[UsageEvent]] = {}
    for columns in records:
        content_type, value = columns_record(columns)
        assert len(value) <= MAX_PRODUCED_BYTES
        expected = CLOUDEVENTS_CONTENT_TYPE if len(columns) == 1 else COLUMNS_CONTENT_TYPE
        assert content_type == expected
        headers = [(CONTENT_TYPE_HEADER, content_type.encode())]
        if len(columns) > 1:  # the producer's own encoder writes the contract's bytes
            assert value == encode_columns(columns)
        events = decode_record(value, headers, now_ms=NOW_MS, key=columns.tenant_id.encode())
        assert events == columns.events()
        by_tenant.setdefault(columns.tenant_id, []).extend(events)
    return by_tenant


def outcome(validate: Callable[[], Any]) -> tuple[str, Any]:
    try:
        return "ok", validate()
    except InvalidEventError as exc:
        return "invalid", (exc.field, exc.index)


tenants = st.sampled_from(["acme", "t-1", "beta"])
# Valid fields of a few tenants (so records hold several events), with optional ids,
# attributes, operations and cache/reasoning counts as valid_fields draws them.
fields_of_few_tenants = st.tuples(valid_fields(), tenants).map(
    lambda pair: {**pair[0], "tenant_id": pair[1]}
)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(valid_fields(), min_size=1, max_size=6),
    st.integers(0, 5),
    st.sampled_from(FIELD_NAMES),
    junk,
    st.booleans(),
    st.booleans(),
)
def test_validation_to_columns_is_encode_fields_for_each(
    many: list[dict[str, Any]], which: int, name: str, value: Any, mutate: bool, warm: bool
) -> None:
    if warm:
        for fields in many:
            encode_fields(fields, max_future_skew_s=SKEW_S)  # warm caches: the quick paths
    if mutate:
        many[which % len(many)][name] = value
    expected: tuple[str, Any]
    try:
        expected = ("ok", reference_events(many))
    except InvalidEventError as exc:
        index = next(
            i for i, f in enumerate(many) if outcome(lambda f=f: reference_events([f]))[0] != "ok"
        )
        expected = ("invalid", (exc.field, index))
    # send_many: all at once, column-wise
    got = outcome(lambda: columns_many(many, max_future_skew_s=SKEW_S))
    if got[0] == "ok":
        got = ("ok", {part.tenant_id: part.events() for part in got[1]})
    assert got == expected
    # send: one by one
    rows = [outcome(lambda f=f: fields_row(f, EARLIEST_MS, LATEST_MS)) for f in many]
    if expected[0] == "ok":
        by_tenant: dict[str, list[UsageEvent]] = {}
        for _, (tenant, row, attributes) in rows:
            columns = EventColumns(tenant, *map(lambda v: [v], row), attributes=[attributes])
            by_tenant.setdefault(tenant, []).extend(columns.events())
        assert by_tenant == expected[1]
    else:
        field, index = expected[1]
        assert rows[index] == ("invalid", (field, None))


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(fields_of_few_tenants, min_size=1, max_size=30),
    st.integers(1, 7),
    st.lists(st.integers(0, 8), min_size=1, max_size=10),
    st.booleans(),
)
def test_records_decode_to_exactly_the_events_sent(
    many: list[dict[str, Any]], max_events: int, splits: list[int], as_events: bool
) -> None:
    """Events go in through `add_rows` (send's and send_many's quick path), `extend`
    (send_many's careful path) and `add` (send with attributes) in turns; the records
    are v2 (a lone event a CloudEvent) and give back every event, per tenant in order."""
    batches = TenantBatches(max_events, linger_s=1e9)
    records: list[EventColumns] = []
    start, turn = 0, 0
    while start < len(many):
        chunk = many[start : start + splits[turn % len(splits)] + 1]
        rows = [fields_row(fields, EARLIEST_MS, LATEST_MS) for fields in chunk]
        if turn % 3 == 2 and not any(attributes for _, _, attributes in rows):
            pairs = [(tenant, row) for tenant, row, _ in rows]
            assert [quick_row(f, EARLIEST_MS, LATEST_MS) for f in chunk] == pairs  # learned
            records += batches.add_rows(pairs)
        elif turn % 3 == 1:
            for part in columns_many(chunk, max_future_skew_s=SKEW_S):
                records += batches.extend(part)
        else:
            for fields in chunk:
                row = event_row(UsageEvent(**fields)) if as_events else None
                row = row or fields_row(fields, EARLIEST_MS, LATEST_MS)
                done = batches.add(*row)
                records += [done] if done is not None else []
        start, turn = start + len(chunk), turn + 1
    assert batches.buffered == len(many) - sum(map(len, records))
    records += batches.drain()
    assert batches.buffered == 0
    assert all(len(r) <= max_events for r in records)
    assert decoded(records) == reference_events(many)


@settings(max_examples=100)
@given(
    st.lists(st.integers(EARLIEST_MS, 4_102_444_800_000), min_size=2, max_size=50),
    st.sampled_from(["chat", "embeddings"]),
)
def test_encoded_times_are_the_canonical_times(times: list[int], op: str) -> None:
    n = len(times)
    columns = EventColumns(
        "acme",
        [f"e{i}" for i in range(n)],
        ["//n"] * n,
        times,
        ["m"] * n,
        ["p"] * n,
        [op] * n,
        list(range(n)),
        [1] * n,
        [0] * n,
        [0] * n,
        [0] * n,
        *([None] * n for _ in range(5)),
        ["node-1"] * n,
    )
    expected = [format_time(EPOCH + ONE_MS * ms) for ms in times]
    assert format_times(columns.time_ms) == expected
    assert [format_ms(ms) for ms in times] == expected
    assert orjson.loads(encode_columns(columns))["columns"]["time"] == expected


def big_fields(i: int, attributes: bool) -> dict[str, Any]:
    """A valid event as large as the contract allows."""
    fields: dict[str, Any] = {
        "id": f"e{i:07d}".ljust(128, "x"),
        "source": "s" * 256,
        "time": datetime(2026, 1, 1, tzinfo=UTC) + timedelta(milliseconds=i),
        "tenant_id": "t" * 128,
        "model": "m" * 128,
        "provider": "p" * 128,
        "operation": "o" * 128,
        "input_tokens": MAX_TOKENS,
        "output_tokens": MAX_TOKENS,
        "cache_read_input_tokens": MAX_TOKENS // 2,
        "cache_creation_input_tokens": MAX_TOKENS // 2,
        "reasoning_output_tokens": MAX_TOKENS,
        **{name: name[0] * 128 for name in ("project_id", "agent_id", "user_id")},
        **{name: name[0] * 128 for name in ("api_key_id", "region", "node_id")},
    }
    if attributes:  # escapes make JSON longer than the text: '"' is written \"
        value = '"\\é' * 12
        attrs = {f"k{j:02d}".ljust(60, "x"): value for j in range(16)}
        assert len(orjson.dumps(attrs)) <= MAX_ATTRIBUTES_BYTES
        fields["attributes"] = attrs
    return fields


@pytest.mark.parametrize("attributes", [False, True, "some"])
@pytest.mark.parametrize("how", ["send", "send_many", "both"])
def test_records_never_exceed_the_broker_limit(attributes: bool | str, how: str) -> None:
    many = [
        big_fields(i, attributes is True or (attributes == "some" and i % 7 == 0))
        for i in range(2500)
    ]
    batches = TenantBatches(10_000, linger_s=1e9)
    records: list[EventColumns] = []
    for start in range(0, len(many), 300):
        chunk = many[start : start + 300]
        if how == "send_many" or (how == "both" and start % 600):
            for part in columns_many(chunk, max_future_skew_s=1e9):
                records += batches.extend(part)
        else:
            for fields in chunk:
                done = batches.add(*fields_row(fields, EARLIEST_MS, 10**15))
                records += [done] if done is not None else []
    records += batches.drain()
    sizes = [len(columns_record(r)[1]) for r in records]
    assert max(sizes) <= MAX_PRODUCED_BYTES
    assert min(sizes[:-1]) > MAX_PRODUCED_BYTES * 0.8  # full records, not timid ones
    events = [e for r in records for e in decode_record(columns_record(r)[1], None, now_ms=10**14)]
    assert [e.id for e in events] == [f["id"] for f in many]


def test_the_worst_case_event_is_what_the_bound_says() -> None:
    [part] = columns_many([big_fields(0, False), big_fields(1, False)], max_future_skew_s=1e9)
    assert len(encode_columns(part)) <= ENVELOPE_BYTES + 2 * WORST_EVENT_BYTES


@pytest.mark.parametrize("how", ["send", "send_many"])
def test_records_fill_to_the_limit_or_to_max_events(how: str) -> None:
    """The bound is tight: records of many events are cut close to the limit, and small
    events fill a record to `max_events` even when their worst case would not fit."""
    medium = [{**big_fields(i, False), "id": f"e{i}", "source": "//n"} for i in range(20_000)]
    small = [{**f, "model": "m", "provider": "p", "operation": "chat"} for f in medium]
    for f in small:
        for name in ("project_id", "agent_id", "user_id", "api_key_id", "region", "node_id"):
            del f[name]
    for many, max_events in ((medium, 10_000), (small, 2_000)):
        assert max_events * WORST_EVENT_BYTES > MAX_PRODUCED_BYTES
        batches = TenantBatches(max_events, linger_s=1e9)
        records: list[EventColumns] = []
        if how == "send":
            for fields in many:
                done = batches.add(*fields_row(fields, EARLIEST_MS, 10**15))
                records += [done] if done is not None else []
        else:
            for start in range(0, len(many), 1000):
                [part] = columns_many(many[start : start + 1000], max_future_skew_s=1e9)
                records += batches.extend(part)
        sizes = [len(columns_record(r)[1]) for r in records]
        assert max(sizes) <= MAX_PRODUCED_BYTES
        if many is medium:
            assert min(sizes) > MAX_PRODUCED_BYTES * 0.98
        else:
            assert {len(r) for r in records} == {max_events}


class FakeClient:
    """confluent_kafka.Producer's surface the SDK uses; keeps what it produced and
    acknowledges it on the next poll (as librdkafka would, outside `produce`)."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.records: list[tuple[bytes, bytes, list[tuple[str, bytes]]]] = []
        self._reports: list[Callable[[Any, Any], None]] = []

    def produce(self, topic: str, value: bytes, key: bytes, headers: Any, on_delivery: Any) -> None:
        self.records.append((key, value, headers))
        self._reports.append(on_delivery)

    def poll(self, timeout: float = 0) -> int:
        reports, self._reports = self._reports, []
        for report in reports:
            report(None, FakeMessage())
        if not reports:
            time.sleep(min(timeout, 0.01))
        return len(reports)

    def flush(self, timeout: float = 0) -> int:
        self.poll()
        return 0

    def purge(self, **kwargs: Any) -> None:
        pass

    def close(self) -> None:
        pass


class FakeMessage:
    def partition(self) -> int:
        return 0

    def offset(self) -> int:
        return 0


def test_the_sdk_sends_v2_records_of_exactly_the_events_sent(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    clients: list[FakeClient] = []
    monkeypatch.setattr(
        "tokenops.producers.producer.Producer",
        lambda config: clients.append(FakeClient(config)) or clients[-1],
    )

    def no_decoding(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the producer signs its columns, it never decodes its records")

    monkeypatch.setattr("tokenops.producers.signing.decode_columns", no_decoding)
    now = datetime.now(UTC)

    def fields(i: int, tenant: str, **extra: Any) -> dict[str, Any]:
        return {
            "id": f"evt-{i}",
            "source": "//node/test/gpu-1",
            "time": now - timedelta(milliseconds=i),
            "tenant_id": tenant,
            "model": "claude-sonnet-4-5",
            "provider": "anthropic",
            "input_tokens": 100 + i,
            "output_tokens": 10 + i,
            **extra,
        }

    rich = {
        "operation": "embeddings",
        "cache_read_input_tokens": 40,
        "cache_creation_input_tokens": 7,
        "reasoning_output_tokens": 3,
        "project_id": "proj-1",
        "agent_id": "agent-7",
        "user_id": "u@example.com",
        "api_key_id": "key-2",
        "region": "eu-west-1",
        "node_id": "gpu-1",
    }
    key = b"node-a-secret-0123456789"
    settings = ProducerSettings(
        spool_dir=tmp_path, batch_max_events=40, signing_key_id="node-a", signing_key=key.decode()
    )
    registry = CollectorRegistry()
    sent: list[UsageEvent] = []
    with UsageProducer(KafkaSettings(), settings, registry=registry) as producer:
        for i in range(100):
            extra = rich if i % 3 else {}
            if i % 10 == 0:
                extra = {**extra, "attributes": {"deployment": "blue", "note": 'a "q" é'}}
            mapping = fields(i, f"tenant-{i % 3}", **extra)
            producer.send(UsageEvent(**mapping) if i % 4 == 0 else mapping)
            sent.append(UsageEvent(**mapping))
        many = [fields(i, f"tenant-{i % 2}", **(rich if i % 2 else {})) for i in range(100, 200)]
        many[5]["attributes"] = {"team": "search"}
        assert (
            producer.send_many([UsageEvent(**f) if i % 2 else f for i, f in enumerate(many[:50])])
            == 50
        )
        assert (
            producer.send_many(
                [{k: v for k, v in f.items() if k != "attributes"} for f in many[50:]]
            )
            == 50
        )
        sent += [UsageEvent(**f) for f in many[:50]]
        sent += [UsageEvent(**{k: v for k, v in f.items() if k != "attributes"}) for f in many[50:]]
        assert producer.flush(5) == 0
    [client] = clients
    keyring = Keyring({"node-a": SigningKey(key, ("*",))})
    got: dict[bytes, list[UsageEvent]] = {}
    content_types = set()
    for record_key, value, headers in client.records:
        content_type = dict(headers)[CONTENT_TYPE_HEADER].decode()
        events = decode_record(value, headers, key=record_key)
        assert content_type == (
            COLUMNS_CONTENT_TYPE if len(events) > 1 else CLOUDEVENTS_CONTENT_TYPE
        )
        assert SIGNATURE_HEADER in dict(headers)
        assert keyring.verify(events, headers) == "node-a"  # what the worker checks
        content_types.add(content_type)
        got.setdefault(record_key, []).extend(events)
    assert COLUMNS_CONTENT_TYPE in content_types
    expected: dict[bytes, list[UsageEvent]] = {}
    for event in sent:
        expected.setdefault(event.tenant_id.encode(), []).append(event)
    assert got == expected
    assert any(e.attributes for e in sent) and any(e.operation == "embeddings" for e in sent)
    assert registry.get_sample_value("tokenops_producer_events_sent_total") == 200


def test_a_lone_event_keeps_the_bytes_it_came_in_and_a_shared_record_does_not() -> None:
    """A part of one event given with its CloudEvent bytes (the HTTP API's single event)
    leaves as those bytes when it is alone in its record; if another event of its tenant
    joins the buffer, the record is encoded from the columns (the bytes hold one event)."""
    lone, other = (
        EventColumns.from_events([UsageEvent(**big_fields(i, attributes=False))]) for i in (1, 2)
    )
    batches = TenantBatches(max_events=500, linger_s=1.0)
    batches.extend(lone, encoded=b"the posted bytes")
    [record] = batches.drain()
    assert batches.taken(record) == (None, b"the posted bytes")
    batches.extend(lone, encoded=b"the posted bytes")
    batches.extend(other)  # same tenant: joins the record
    [record] = batches.drain()
    assert len(record) == 2 and batches.taken(record) == (None, None)
    batches.extend(other)  # a buffer started without bytes takes none later
    batches.extend(lone, encoded=b"the posted bytes")
    [record] = batches.drain()
    assert len(record) == 2 and batches.taken(record) == (None, None)
