"""Fuzzing the decoder: whatever a Kafka record holds, `decode_record` returns events or
raises InvalidEventError (the worker's dead-letter path), never anything else."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tokenops.schemas import build_event
from tokenops.schemas.decode import decode_record
from tokenops.schemas.errors import InvalidEventError
from tokenops.schemas.event import UsageEvent
from tokenops.schemas.wire import to_cloudevent

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
