"""The v2 columnar batch record and `decode_columns`: same events, same rules, same errors.

Every test compares the columnar paths with the per-event contract: a v2 batch decodes to
exactly the events its rows describe, a broken value is named with the event's index
like in a v1 batch, and `decode_columns` agrees with `decode_record` on every record.
"""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tokenops.schemas import (
    BATCH_HEADERS,
    COLUMNS_CONTENT_TYPE,
    COLUMNS_HEADERS,
    EVENT_HEADERS,
    EventColumns,
    InvalidEventError,
    UsageEvent,
    decode_columns,
    decode_record,
    encode_columns,
)
from tokenops.schemas.event import parse_time, to_epoch_ms
from tokenops.schemas.rules import FIELDS
from tokenops.schemas.wire import (
    MAX_BATCH_EVENTS,
    encode_batch,
    encode_event,
    format_ms,
    format_time,
    to_cloudevent,
)

from .test_event_contract import NOW_MS, SKEW_S, junk, outcome, reference, valid_fields

SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
COLUMN_FIELDS = [name for name in FIELDS if name not in ("schema_version", "tenant_id")]


def one_tenant(many: list[dict[str, Any]]) -> list[UsageEvent]:
    tenant = many[0]["tenant_id"]
    return [UsageEvent(**{**fields, "tenant_id": tenant}) for fields in many]


def full_body(events: list[UsageEvent]) -> dict[str, Any]:
    """A v2 body with every column present (the encoder leaves default-only ones out)."""
    ces = [to_cloudevent(e) for e in events]
    columns: dict[str, list[Any]] = {name: [] for name in COLUMN_FIELDS}
    for event, ce in zip(events, ces, strict=True):
        for name in COLUMN_FIELDS:
            value = ce[name] if name in ("id", "source", "time") else event.__dict__[name]
            columns[name].append(value)
    return {
        "type": "ai.tokenops.usage.batch",
        "version": 2,
        "tenant_id": events[0].tenant_id,
        "schema_version": 1,
        "columns": columns,
    }


def decode(body: Any, headers: Any = COLUMNS_HEADERS) -> tuple[str, Any]:
    try:
        return "ok", decode_record(orjson.dumps(body), headers, now_ms=NOW_MS)
    except InvalidEventError as exc:
        return "invalid", (exc.field, exc.index)


@SETTINGS
@given(st.lists(valid_fields(), min_size=1, max_size=6))
def test_valid_batches_round_trip_through_columns(many: list[dict[str, Any]]) -> None:
    events = one_tenant(many)
    columns = EventColumns.from_events(events)
    assert columns.events() == events
    encoded = encode_columns(columns)
    assert decode_record(encoded, COLUMNS_HEADERS, now_ms=NOW_MS) == events
    assert decode_record(encoded, None, now_ms=NOW_MS) == events  # sniffed by its body
    assert decode_columns(encoded, COLUMNS_HEADERS, now_ms=NOW_MS) == columns
    # decode_columns agrees with decode_record on every kind of record
    v1 = encode_batch(events)
    assert decode_columns(v1, BATCH_HEADERS, now_ms=NOW_MS).events() == events
    single = decode_columns(encode_event(events[0]), EVENT_HEADERS, now_ms=NOW_MS)
    assert single.events() == events[:1]


@SETTINGS
@given(
    st.lists(valid_fields(), min_size=1, max_size=5),
    st.integers(0, 4),
    st.sampled_from(COLUMN_FIELDS),
    junk,
)
def test_a_broken_value_is_named_like_in_its_cloudevent(
    many: list[dict[str, Any]], which: int, name: str, value: Any
) -> None:
    events = one_tenant(many)
    body = full_body(events)
    decode(body)  # warm the caches: the quick path must agree too
    index = which % len(events)
    body["columns"][name][index] = value
    expected: tuple[str, Any]
    try:
        expected = ("ok", [reference(ce) for ce in cloudevents_of(body)])
    except InvalidEventError as exc:
        first = next(
            i for i, ce in enumerate(cloudevents_of(body)) if outcome(reference, ce)[0] != "ok"
        )
        expected = ("invalid", (exc.field, first))
    assert decode(body) == expected
    with contextlib.suppress(InvalidEventError):
        got = decode_columns(orjson.dumps(body), COLUMNS_HEADERS, now_ms=NOW_MS)
        assert ("ok", got.events()) == expected


def cloudevents_of(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The CloudEvents a v2 body stands for (the contract's definition of its rows)."""
    columns = body["columns"]
    out = []
    for i in range(len(columns["id"])):
        data = {"schema_version": body["schema_version"], "tenant_id": body["tenant_id"]}
        data.update({k: v[i] for k, v in columns.items() if k not in ("id", "source", "time")})
        ce = {"specversion": "1.0", "type": "ai.tokenops.usage", "data": data}
        ce.update({k: columns[k][i] for k in ("id", "source", "time")})
        out.append(orjson.loads(orjson.dumps(ce)))
    return out


def sample_events(n: int = 3, **overrides: Any) -> list[UsageEvent]:
    return [
        UsageEvent(
            **{
                "id": f"e{i}",
                "source": "//node/1",
                "time": datetime(2026, 6, 1, 11, 59, i % 60, 250_000, tzinfo=UTC),
                "tenant_id": "acme",
                "model": "gpt-4o",
                "provider": "openai",
                "input_tokens": 100 + i,
                "output_tokens": 10,
                **overrides,
            }
        )
        for i in range(n)
    ]


def test_columns_holding_only_defaults_are_left_out() -> None:
    body = orjson.loads(encode_columns(EventColumns.from_events(sample_events())))
    assert set(body["columns"]) == {
        "id",
        "source",
        "time",
        "model",
        "provider",
        "input_tokens",
        "output_tokens",
    }
    assert body["columns"]["time"][1] == "2026-06-01T11:59:01.250Z"
    rich = sample_events(2, operation="embeddings", region="eu", attributes={"k": "v"})
    body = orjson.loads(encode_columns(EventColumns.from_events(rich)))
    assert body["columns"]["operation"] == ["embeddings", "embeddings"]
    assert body["columns"]["region"] == ["eu", "eu"]
    assert body["columns"]["attributes"] == [{"k": "v"}, {"k": "v"}]
    assert decode_record(orjson.dumps(body), None, now_ms=NOW_MS) == rich


@pytest.mark.parametrize(
    ("change", "field", "index"),
    [
        (lambda b: b["columns"].pop("model"), "model", None),
        (lambda b: b["columns"].__setitem__("colour", ["red"] * 3), "colour", None),
        (lambda b: b["columns"]["input_tokens"].pop(), "input_tokens", None),
        (lambda b: b["columns"].__setitem__("region", "eu"), "region", None),
        (lambda b: b.__setitem__("columns", []), "columns", None),
        (lambda b: b.__setitem__("schema_version", 2), "schema_version", None),
        (lambda b: b.__setitem__("version", 3), "batch", None),
        (lambda b: b.__setitem__("extra", 1), "batch", None),
        (lambda b: b.__setitem__("tenant_id", "a|b"), "tenant_id", 0),
        (lambda b: b["columns"]["output_tokens"].__setitem__(2, -1), "output_tokens", 2),
        (lambda b: b["columns"]["time"].__setitem__(1, "2026-02-30T00:00:00.000Z"), "time", 1),
    ],
)
def test_broken_batches_are_rejected_naming_the_field(change: Any, field: str, index: Any) -> None:
    body = full_body(sample_events())
    change(body)
    assert decode(body) == ("invalid", (field, index))


def test_batch_sizes_are_bounded() -> None:
    body = full_body(sample_events(1))
    for name in body["columns"]:
        body["columns"][name] = []
    assert decode(body) == ("invalid", ("events", None))
    body = full_body(sample_events(1))
    for name, values in body["columns"].items():
        body["columns"][name] = values * (MAX_BATCH_EVENTS + 1)
    assert decode(body)[0] == "invalid"


def test_the_kafka_key_must_be_the_tenant() -> None:
    encoded = encode_columns(EventColumns.from_events(sample_events()))
    assert len(decode_columns(encoded, None, now_ms=NOW_MS, key=b"acme")) == 3
    with pytest.raises(InvalidEventError) as caught:
        decode_columns(encoded, None, now_ms=NOW_MS, key=b"other")
    assert caught.value.field == "key"


def test_the_content_type_names_the_format() -> None:
    assert [("content-type", COLUMNS_CONTENT_TYPE.encode())] == COLUMNS_HEADERS
    v1_body = encode_batch(sample_events())
    with pytest.raises(InvalidEventError):  # a v1 body under the v2 content type
        decode_record(v1_body, COLUMNS_HEADERS, now_ms=NOW_MS)


def test_columns_are_smaller_than_cloudevents_on_the_wire() -> None:
    events = sample_events(100)
    assert len(encode_columns(EventColumns.from_events(events))) * 2 < len(encode_batch(events))


@SETTINGS
@given(st.integers(to_epoch_ms(datetime(2020, 1, 1, tzinfo=UTC)), 253402300799999))
def test_format_ms_is_the_canonical_time(ms: int) -> None:
    moment = parse_time(format_ms(ms))  # the contract's own time rule
    assert to_epoch_ms(moment) == ms
    assert format_ms(ms) == format_time(moment)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)


@SETTINGS
@given(st.sampled_from(["column", "cell", "envelope"]), st.text(max_size=12), json_values)
def test_any_json_anywhere_raises_only_invalid_event_error(
    place: str, key: str, value: Any
) -> None:
    body = full_body(sample_events())
    if place == "column":
        body["columns"][key] = value
    elif place == "cell":
        name = sorted(body["columns"])[len(key) % len(body["columns"])]
        body["columns"][name][len(key) % 3] = value
    else:
        body[key] = value
    for decoder in (decode_record, decode_columns):
        with contextlib.suppress(InvalidEventError):
            decoder(orjson.dumps(body), None, now_ms=NOW_MS, max_future_skew_s=SKEW_S)
