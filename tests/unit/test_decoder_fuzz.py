"""Fuzzing the decoder: whatever a Kafka record holds, `decode_record` returns events or
raises InvalidEventError (the worker's dead-letter path), never anything else."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tokenops.schemas import EventColumns, build_event
from tokenops.schemas.decode import decode_cloudevents_array, decode_columns, decode_record
from tokenops.schemas.errors import InvalidEventError
from tokenops.schemas.event import UsageEvent
from tokenops.schemas.wire import BATCH_CONTENT_TYPE, BATCH_TYPE, to_cloudevent

NOW_MS = int(datetime(2026, 11, 26, 12, tzinfo=UTC).timestamp() * 1000)
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

VALID = to_cloudevent(
    build_event(
        {
            "id": "e1",
            "source": "//node/1",
            "time": datetime(2026, 11, 26, 11, 59, tzinfo=UTC),
            "tenant_id": "acme",
            "model": "gpt-4o",
            "provider": "openai",
            "input_tokens": 10,
            "output_tokens": 5,
        }
    )
)
HEADER_NAMES = st.sampled_from(["content-type", "Content-Type", "tokenops.signature", "x"])
HEADERS = st.none() | st.lists(
    st.tuples(HEADER_NAMES | st.text(max_size=20), st.binary(max_size=60)), max_size=4
)
CONTENT_TYPES = st.sampled_from(
    [b"application/cloudevents+json", b"application/vnd.tokenops.usage-batch+json", b"\xff"]
)
JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=30),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=12,
)


def decodes_or_rejects(value: Any, headers: Any) -> None:
    try:
        events = decode_record(value, headers, now_ms=NOW_MS)
    except InvalidEventError:
        return
    assert events and all(isinstance(e, UsageEvent) for e in events)


@FUZZ
@given(st.binary(max_size=2048), HEADERS)
def test_arbitrary_bytes_and_headers(value: bytes, headers: Any) -> None:
    decodes_or_rejects(value, headers)


@FUZZ
@given(JSON, HEADERS)
def test_arbitrary_json_documents(document: Any, headers: Any) -> None:
    try:
        value = orjson.dumps(document)
    except TypeError:  # integers beyond 64 bits: send them as text, the decoder parses it
        value = str(document).encode()
    decodes_or_rejects(value, headers)


def _mutate(ce: dict[str, Any], path: list[str], replacement: Any, drop: bool) -> dict[str, Any]:
    ce = orjson.loads(orjson.dumps(ce))
    target = ce
    for key in path[:-1]:
        target = target[key]
    if drop:
        target.pop(path[-1], None)
    else:
        target[path[-1]] = replacement
    return ce


FIELDS = st.sampled_from(
    [["specversion"], ["type"], ["source"], ["id"], ["time"], ["data"], ["subject"]]
    + [["data", name] for name in VALID["data"]]
    + [["data", "attributes"], ["data", "project_id"], ["data", "extra"]]
)


@FUZZ
@given(FIELDS, JSON, st.booleans(), st.none() | CONTENT_TYPES, st.booleans())
def test_valid_events_with_one_field_broken(
    path: list[str], replacement: Any, drop: bool, content_type: bytes | None, batched: bool
) -> None:
    """Close to valid, so the fuzzing reaches the quick paths and the field checks."""
    ce = _mutate(VALID, path, replacement, drop)
    body: Any = ce
    if batched:
        body = {"type": "ai.tokenops.usage.batch", "version": 1, "tenant_id": "acme"}
        body["events"] = [VALID, ce]
    try:
        value = orjson.dumps(body)
    except TypeError:
        return  # an integer orjson cannot write; covered by the JSON test above
    headers = None if content_type is None else [("content-type", content_type)]
    decodes_or_rejects(value, headers)


@given(st.binary(max_size=64), st.integers(min_value=0, max_value=200))
@FUZZ
def test_truncated_and_spliced_valid_records(noise: bytes, cut: int) -> None:
    encoded = orjson.dumps(VALID)
    decodes_or_rejects(encoded[:cut] + noise + encoded[cut:], None)
    decodes_or_rejects(encoded[: len(encoded) - cut], None)


def _wrapped_per_tenant(items: list[Any]) -> list[EventColumns] | InvalidEventError:
    """Each tenant's events as a v1 batch record through `decode_columns`: what
    `decode_cloudevents_array` must equal, tenants in order of first appearance."""
    groups: dict[Any, list[Any]] = {}
    for item in items:
        groups.setdefault(item["data"].get("tenant_id"), []).append(item)
    try:
        return [
            decode_columns(
                orjson.dumps(
                    {"type": BATCH_TYPE, "version": 1, "tenant_id": tenant, "events": events}
                ),
                [("content-type", BATCH_CONTENT_TYPE.encode())],
                now_ms=NOW_MS,
            )
            for tenant, events in groups.items()
        ]
    except InvalidEventError as exc:
        return exc


@FUZZ
@given(
    st.lists(st.tuples(st.sampled_from(["acme", "beta", "gamma"]), FIELDS, JSON, st.booleans(),
                       st.booleans()), min_size=1, max_size=8)
)  # fmt: skip
def test_an_http_batch_array_decodes_as_its_tenants_batch_records(events: list[Any]) -> None:
    """`decode_cloudevents_array` (the HTTP batch mode, parsed once) returns exactly the
    columns of each tenant's events decoded as a batch record, or None when that would
    not take the column check's way; it never accepts what the batch records refuse."""
    items = []
    for i, (tenant, path, replacement, drop, broken) in enumerate(events):
        ce = _mutate(VALID, ["id"], f"e{i}", False)
        ce["data"]["tenant_id"] = tenant
        items.append(_mutate(ce, path, replacement, drop) if broken else ce)
    try:
        value = orjson.dumps(items)
    except TypeError:
        return
    got = decode_cloudevents_array(value, orjson.loads(value), now_ms=NOW_MS)
    if any(
        item.__class__ is not dict
        or item.get("data").__class__ is not dict
        or item["data"].get("tenant_id").__class__ is not str
        for item in items
    ):  # no tenant to group by: the API names these events one by one
        assert got is None
        return
    expected = _wrapped_per_tenant(items)
    if got is None:
        return  # the careful path decides, as before
    assert not isinstance(expected, InvalidEventError), expected
    assert got == expected


def test_an_http_batch_array_with_a_key_twice_is_refused() -> None:
    """A repeated key is refused as in a record: readers disagree on which value wins."""
    value = orjson.dumps([VALID]).replace(b'"model":', b'"model":"x","model":', 1)
    with pytest.raises(InvalidEventError) as refused:
        decode_cloudevents_array(value, orjson.loads(value), now_ms=NOW_MS)
    assert refused.value.field == "duplicate_key"
