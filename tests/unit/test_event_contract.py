"""The usage-event contract: round trips, the fast decoder against pydantic, bad input."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from tokenops.schemas import (
    BATCH_HEADERS,
    EVENT_HEADERS,
    MAX_RECORD_BYTES,
    InvalidEventError,
    UsageEvent,
    build_event,
    decode_record,
    encode_batch,
    encode_event,
)
from tokenops.schemas.decode import envelope_fields, from_cloudevent
from tokenops.schemas.event import (
    IDENTIFIER_PATTERN,
    MAX_TOKENS,
    SOURCE_PATTERN,
    invalid_event_error,
    to_epoch_ms,
)
from tokenops.schemas.jsonschema import SCHEMA_DIR, rendered
from tokenops.schemas.rules import MISSING
from tokenops.schemas.wire import encode_batch_encoded, encode_fields, to_cloudevent

NOW = datetime(2026, 6, 1, 12, 0, 0, tzinfo=UTC)
NOW_MS = to_epoch_ms(NOW)
SKEW_S = 300.0
CONTEXT = {"now_ms": NOW_MS, "max_future_skew_s": SKEW_S}
OPTIONAL_IDS = ("project_id", "agent_id", "user_id", "api_key_id", "region", "node_id")

identifiers = st.from_regex(IDENTIFIER_PATTERN[1:-1], fullmatch=True)
common_identifiers = st.sampled_from(["acme", "t-1", "gpt-4o", "us-east-1", "a.b:c@d/e_f"])
any_identifier = st.one_of(identifiers, common_identifiers)
sources = st.one_of(
    st.from_regex(SOURCE_PATTERN[1:-1], fullmatch=True), st.just("//node/us-east-1/gpu-17")
)
times = st.datetimes(
    min_value=datetime(2020, 1, 1), max_value=NOW.replace(tzinfo=None), timezones=st.just(UTC)
).map(lambda t: t.replace(microsecond=t.microsecond // 1000 * 1000))
attribute_values = st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), max_size=40)


@st.composite
def valid_fields(draw: st.DrawFn) -> dict[str, Any]:
    input_tokens = draw(st.integers(0, MAX_TOKENS))
    cache_read = draw(st.integers(0, input_tokens))
    cache_creation = draw(st.integers(0, input_tokens - cache_read))
    output_tokens = draw(st.integers(0, MAX_TOKENS))
    fields: dict[str, Any] = {
        "id": draw(any_identifier),
        "source": draw(sources),
        "time": draw(times),
        "tenant_id": draw(any_identifier),
        "model": draw(any_identifier),
        "provider": draw(any_identifier),
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "cache_read_input_tokens": cache_read,
        "cache_creation_input_tokens": cache_creation,
        "reasoning_output_tokens": draw(st.integers(0, output_tokens)),
    }
    for name in OPTIONAL_IDS:
        if draw(st.booleans()):
            fields[name] = draw(any_identifier)
    if draw(st.booleans()):
        fields["operation"] = draw(any_identifier)
    if draw(st.booleans()):
        fields["attributes"] = draw(
            st.dictionaries(
                st.from_regex(r"[a-z][a-z0-9_.]{0,20}", fullmatch=True),
                attribute_values,
                max_size=4,
            )
        )
    return fields


junk = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**40), 2**40),
    st.sampled_from([-1, MAX_TOKENS + 1, 0, 1, 2, 1.0, "1", "", "a|b", "-x", " x", "x\n"]),
    st.floats(allow_nan=False),
    st.text(max_size=10),
    st.lists(st.integers(-(2**63), 2**63 - 1), max_size=2),
    st.dictionaries(st.text(max_size=3), st.text(max_size=3), max_size=2),
    st.sampled_from(
        [
            "2019-12-31T23:59:59.999Z",
            "2026-06-01T12:05:00.001Z",
            "2026-06-01T12:00:00.000+02:00",
            "2026-06-01T12:00:00Z",
            "2026-06-01 12:00:00.000Z",
            "2026-02-30T00:00:00.000Z",
            "2026-06-01T12:00:00.000",
            "2026-06-01T12:00:00.123456789Z",
            "9999-01-01T00:00:00.000Z",
            "0001-01-01T00:00:00.000+01:00",
            "9999-12-31T23:59:59.999-01:00",
        ]
    ),
)
# hypothesis favours the first element: lead with a field whose breakage is interesting
FIELD_NAMES = ["tenant_id", *reversed([*UsageEvent.model_fields, "unknown_field"])]


def reference(ce: dict[str, Any]) -> UsageEvent:
    """The slow, obviously right decoder: envelope checks, then the pydantic model."""
    data, event_id, source, when = envelope_fields(ce)
    fields = dict(data)
    for name, value in (("id", event_id), ("source", source), ("time", when)):
        if value is not MISSING:
            fields[name] = value
    try:
        return UsageEvent.model_validate(fields, context=CONTEXT)
    except ValidationError as exc:
        raise invalid_event_error(exc) from exc


def fast(ce: dict[str, Any]) -> UsageEvent:
    return from_cloudevent(ce, NOW_MS + int(SKEW_S * 1000))


def outcome(decode: Any, ce: dict[str, Any]) -> tuple[str, Any]:
    try:
        return "ok", decode(ce)
    except InvalidEventError as exc:
        return "invalid", exc.field


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(valid_fields())
def test_valid_events_round_trip_unchanged(fields: dict[str, Any]) -> None:
    event = UsageEvent(**fields)
    assert build_event(fields, max_future_skew_s=10**9) == event
    for _ in range(2):  # cold, then warm caches: the careful and the quick path
        tenant, encoded = encode_fields(fields, max_future_skew_s=10**9)
        assert tenant == event.tenant_id
        assert decode_record(encoded, None, now_ms=NOW_MS) == [event]
    assert decode_record(
        encode_batch_encoded(event.tenant_id, [encoded, encode_event(event)]), None, now_ms=NOW_MS
    ) == [event, event]
    [decoded] = decode_record(encode_event(event), EVENT_HEADERS, now_ms=NOW_MS)
    assert decoded == event
    assert decoded.time_ms == to_epoch_ms(event.time)
    assert decode_record(encode_batch([event, event]), BATCH_HEADERS, now_ms=NOW_MS) == [event] * 2
    # twice: the second decode takes the quick path, its caches now warm
    assert decode_record(encode_event(event), None, now_ms=NOW_MS) == [event]


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(valid_fields(), st.sampled_from(FIELD_NAMES), junk, st.booleans())
def test_fast_decoder_agrees_with_pydantic_on_one_broken_field(
    fields: dict[str, Any], name: str, value: Any, delete: bool
) -> None:
    ce = to_cloudevent(UsageEvent(**fields))
    fast(ce)  # warm the quick path's caches with the valid original
    target = ce if name in ("id", "source", "time") else ce["data"]
    if delete:
        target.pop(name, None)
    else:
        target[name] = value
    expected, got = outcome(reference, ce), outcome(fast, ce)
    assert got == expected
    if delete and name in (
        "id",
        "source",
        "time",
        "tenant_id",
        "model",
        "provider",
        "input_tokens",
        "output_tokens",
        "schema_version",
    ):
        assert got == ("invalid", name)


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(valid_fields(), st.dictionaries(st.sampled_from(FIELD_NAMES), junk, max_size=4))
def test_fast_decoder_agrees_with_pydantic_on_many_changes(
    fields: dict[str, Any], changes: dict[str, Any]
) -> None:
    ce = to_cloudevent(UsageEvent(**fields))
    fast(ce)
    for name, value in changes.items():
        (ce if name in ("id", "source", "time") else ce["data"])[name] = value
    assert outcome(fast, ce) == outcome(reference, ce)


def event(**overrides: Any) -> UsageEvent:
    fields: dict[str, Any] = {
        "id": "evt-1",
        "source": "//node/us-east-1/gpu-17",
        "time": datetime.now(UTC),
        "tenant_id": "acme",
        "model": "claude-sonnet-4-5",
        "provider": "anthropic",
        "input_tokens": 1200,
        "output_tokens": 300,
        "cache_read_input_tokens": 1000,
        "reasoning_output_tokens": 100,
    }
    return UsageEvent(**{**fields, **overrides})


def reject(value: Any, headers: Any = None, **kwargs: Any) -> InvalidEventError:
    with pytest.raises(InvalidEventError) as info:
        decode_record(value, headers, **kwargs)
    return info.value


def ce_bytes(mutate: Any) -> bytes:
    ce = to_cloudevent(event())
    mutate(ce)
    return orjson.dumps(ce)


def test_unknown_schema_version_is_rejected() -> None:
    error = reject(ce_bytes(lambda ce: ce["data"].update(schema_version=2)), EVENT_HEADERS)
    assert (error.field, error.value) == ("schema_version", 2)


def test_missing_schema_version_is_rejected() -> None:
    error = reject(ce_bytes(lambda ce: ce["data"].pop("schema_version")), EVENT_HEADERS)
    assert error.field == "schema_version"


@pytest.mark.parametrize("name", ["tenant_id", "model", "provider", "input_tokens", "id", "time"])
def test_missing_fields_are_named(name: str) -> None:
    def drop(ce: dict[str, Any]) -> None:
        (ce if name in ce else ce["data"]).pop(name)

    assert reject(ce_bytes(drop), EVENT_HEADERS).field == name


def test_non_utf8_bytes_are_rejected() -> None:
    raw = encode_event(event()).replace(b"acme", b"ac\xffe")
    assert reject(raw, EVENT_HEADERS).field == "record"
    assert reject(b"\xff\xfe{}", BATCH_HEADERS).field == "record"


@pytest.mark.parametrize("value", [b"", b"{", b"[]", b"null", b"42", b'"x"', b"{}{}"])
def test_malformed_json_is_rejected(value: bytes) -> None:
    assert reject(value, EVENT_HEADERS).field in ("record", "specversion")


def test_oversized_records_are_rejected() -> None:
    padded = encode_event(event())[:-1] + b" " * 9000 + b"}"
    assert reject(padded, EVENT_HEADERS).field == "record"
    huge = encode_batch([event(id=f"e{i}") for i in range(2)]) + b" " * MAX_RECORD_BYTES
    assert reject(huge, BATCH_HEADERS).field == "record"


def test_oversized_attributes_are_rejected_at_the_call_site() -> None:
    big = {f"k{i}": "é" * 256 for i in range(16)}
    with pytest.raises(InvalidEventError) as info:
        event(attributes=big)
    assert info.value.field == "attributes"


def test_a_pipe_can_never_enter_an_aggregate_key() -> None:
    for name in ("tenant_id", "model", "region"):
        with pytest.raises(InvalidEventError) as info:
            event(**{name: "a|b"})
        assert (info.value.field, info.value.value) == (name, "a|b")


def test_token_rules_name_the_field() -> None:
    cases = {
        "input_tokens": {"input_tokens": -1},
        "output_tokens": {"output_tokens": MAX_TOKENS + 1},
        "cache_creation_input_tokens": {"cache_creation_input_tokens": 300},
        "reasoning_output_tokens": {"reasoning_output_tokens": 301},
    }
    for field, overrides in cases.items():
        with pytest.raises(InvalidEventError) as info:
            event(**overrides)
        assert info.value.field == field
    with pytest.raises(InvalidEventError) as info:
        event(input_tokens=True)
    assert info.value.field == "input_tokens"


def test_time_must_be_aware_recent_and_not_too_far_ahead() -> None:
    for when in (datetime(2026, 1, 1), datetime(2019, 1, 1, tzinfo=UTC), "yesterday"):
        with pytest.raises(InvalidEventError) as info:
            event(time=when)
        assert info.value.field == "time"
    ahead = datetime.now(UTC) + timedelta(minutes=10)
    with pytest.raises(InvalidEventError):
        event(time=ahead)
    raw = encode_event(
        UsageEvent.model_validate(
            {**event().model_dump(), "time": ahead}, context={"max_future_skew_s": 3600}
        )
    )
    assert reject(raw, EVENT_HEADERS).field == "future"
    assert decode_record(raw, EVENT_HEADERS, max_future_skew_s=3600)[0].time_ms > 0


def test_time_is_utc_with_millisecond_precision() -> None:
    plus_two = datetime(2026, 1, 1, 14, 0, 0, 123456, tzinfo=UTC).astimezone(
        __import__("datetime").timezone(timedelta(hours=2))
    )
    made = event(time=plus_two)
    assert made.time == datetime(2026, 1, 1, 12 + 2, 0, 0, 123000, tzinfo=UTC)
    assert made.time.tzinfo is UTC
    assert b'"time":"2026-01-01T14:00:00.123Z"' in encode_event(made)


def test_batch_rules() -> None:
    with pytest.raises(InvalidEventError) as info:
        encode_batch([event(), event(tenant_id="other")])
    assert info.value.field == "tenant_id"
    body = orjson.loads(encode_batch([event(), event(id="evt-2")]))
    body["events"][1]["data"]["tenant_id"] = "other"
    error = reject(orjson.dumps(body), BATCH_HEADERS)
    assert (error.field, error.index) == ("tenant_id", 1)
    body["events"] = []
    assert reject(orjson.dumps(body), BATCH_HEADERS).field == "events"
    body.update(version=2, events=[to_cloudevent(event())])
    assert reject(orjson.dumps(body), BATCH_HEADERS).field == "batch"


def test_the_kafka_key_must_be_the_tenant_when_given() -> None:
    raw = encode_event(event())
    assert decode_record(raw, EVENT_HEADERS, key=b"acme")[0].tenant_id == "acme"
    error = reject(raw, EVENT_HEADERS, key=b"other")
    assert (error.field, error.value) == ("key", b"other")
    batch = encode_batch([event(), event(id="evt-2")])
    assert reject(batch, BATCH_HEADERS, key=b"other").field == "key"


def test_unknown_content_type_is_rejected() -> None:
    error = reject(encode_event(event()), [("content-type", b"text/plain")])
    assert error.field == "content-type"


def test_single_events_stay_readable_cloudevents() -> None:
    made = event(region="eu-west-1", attributes={"deployment": "blue"})
    ce = orjson.loads(encode_event(made))
    assert (ce["specversion"], ce["type"], ce["id"]) == ("1.0", "ai.tokenops.usage", "evt-1")
    assert ce["data"]["region"] == "eu-west-1" and "project_id" not in ce["data"]
    inner = orjson.loads(encode_batch([made]))["events"][0]
    assert inner == ce


def test_times_without_a_utc_datetime_are_invalid_not_a_crash() -> None:
    for when in ("0001-01-01T00:00:00.000+01:00", "9999-12-31T23:59:59.999-01:00"):
        raw = ce_bytes(lambda ce, when=when: ce.update(time=when))
        assert reject(raw, EVENT_HEADERS).field == "time"
        with pytest.raises(InvalidEventError):
            event(time=when)


def test_decode_never_raises_anything_else() -> None:
    for value in (None, "text", 5, b"\x00" * 10, b'{"events": 5}', b'{"specversion": []}'):
        reject(value)
    reject(b"{}", [("content-type", b"\xff")])


def test_checked_in_json_schemas_are_fresh() -> None:
    for name, text in rendered().items():
        on_disk = (SCHEMA_DIR / name).read_text() if (SCHEMA_DIR / name).exists() else ""
        assert on_disk == text, (
            f"schemas/{name} is stale: run .venv/bin/python -m tokenops.schemas.jsonschema"
        )


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(valid_fields(), st.sampled_from(FIELD_NAMES), junk)
def test_sdk_fast_constructor_agrees_with_pydantic(
    fields: dict[str, Any], name: str, value: Any
) -> None:
    fields[name] = value

    def slow(f: dict[str, Any]) -> UsageEvent:
        try:
            return UsageEvent.model_validate(f, context={"max_future_skew_s": SKEW_S})
        except ValidationError as exc:
            raise invalid_event_error(exc) from exc

    expected = outcome(slow, fields)
    assert outcome(lambda f: build_event(f, max_future_skew_s=SKEW_S), fields) == expected
    encoded = outcome(lambda f: encode_fields(f, max_future_skew_s=SKEW_S), fields)
    assert encoded[0] == expected[0]
    if expected[0] == "ok":
        assert decode_record(encoded[1][1], None, max_future_skew_s=SKEW_S) == [expected[1]]
    else:
        assert encoded == expected


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63)
    | st.floats(allow_nan=False)
    | st.text(max_size=30),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=20,
)
any_headers = st.sampled_from([None, EVENT_HEADERS, BATCH_HEADERS, [("content-type", b"x/y")]])


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.binary(max_size=200), json_values.map(orjson.dumps)), any_headers)
def test_any_bytes_decode_or_raise_invalid_event_error(value: bytes, headers: Any) -> None:
    with contextlib.suppress(InvalidEventError):
        decode_record(value, headers)


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(
    valid_fields(),
    st.sampled_from(["data", "envelope", "batch"]),
    st.text(max_size=12),
    json_values,
)
def test_any_json_in_any_place_raises_only_invalid_event_error(
    fields: dict[str, Any], place: str, key: str, value: Any
) -> None:
    ce = to_cloudevent(UsageEvent(**fields))
    if place == "data":
        ce["data"][key] = value
    elif place == "envelope":
        ce[key] = value
    body: Any = ce
    if place == "batch":
        body = {
            "type": "ai.tokenops.usage.batch",
            "version": 1,
            "tenant_id": value,
            "events": [ce, ce],
        }
    with contextlib.suppress(InvalidEventError):
        decode_record(orjson.dumps(body), None, now_ms=NOW_MS)
