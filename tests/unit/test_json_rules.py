"""JSON rules of the event contract the parser alone does not enforce.

A key twice in one JSON object is rejected (`duplicate_key`): orjson keeps the last
value, other readers the first, so the same bytes would bill differently per reader.
`-0` is the integer zero (RFC 8259 grammar) and is accepted as 0; `-0.0` is a float and,
like every float, not a token count. docs/event-contract.md ("JSON") states both.
"""

from __future__ import annotations

import json

import orjson
import pytest

from tests.unit.test_event_contract import event
from tokenops.schemas import EventColumns, decode_columns, decode_record, encode_batch
from tokenops.schemas.errors import InvalidEventError
from tokenops.schemas.wire import encode_columns, encode_event

SINGLE = encode_event(event())
V1 = encode_batch([event(), event(id="evt-2")])
V2 = encode_columns(EventColumns.from_events([event(), event(id="evt-2", attributes={"k": "v"})]))


def _rejected(value: bytes) -> InvalidEventError:
    for decode in (decode_record, decode_columns):  # both readers, the same verdict
        with pytest.raises(InvalidEventError) as info:
            decode(value)
        error = info.value
    return error


@pytest.mark.parametrize(
    ("value", "key"),
    [
        (SINGLE.replace(b'"input_tokens":1200', b'"input_tokens":1,"input_tokens":1200'),
         "input_tokens"),
        (SINGLE.replace(b'"id":"evt-1"', b'"id":"evt-1","id":"evt-9"'), "id"),
        (V1.replace(b'"tenant_id":"acme"', b'"tenant_id":"acme","tenant_id":"acme"', 1),
         "tenant_id"),
        (V2.replace(b'"columns":{', b'"columns":{"input_tokens":[1,1],', 1), "input_tokens"),
        (V2.replace(b'{"k":"v"}', b'{"k":"v","k":"w"}'), "k"),
        # the key spelled once with an escape: the same key to every reader
        (SINGLE.replace(b'"model":', b'"\\u006dodel":"x","model":'), "model"),
        # a duplicate hidden behind a colon spelled \\u003a inside a string
        (SINGLE.replace(b'"source":"//node', b'"source":"\\u003a//node')
         .replace(b'"provider":', b'"provider":"x","provider":'), "provider"),
        # pretty-printed, with a duplicate
        (json.dumps({**orjson.loads(SINGLE), "id": "evt-1"}, indent=2).encode()
         .replace(b'"id": "evt-1"', b'"id": "evt-1",\n  "id": "evt-2"'), "id"),
    ],
)  # fmt: skip
def test_a_key_twice_in_one_object_is_rejected_naming_it(value: bytes, key: str) -> None:
    error = _rejected(value)
    assert (error.field, error.value) == ("duplicate_key", key)


@pytest.mark.parametrize(
    "value",
    [
        SINGLE,
        V1,
        V2,
        json.dumps(orjson.loads(V1), indent=2).encode(),  # whitespace everywhere
        json.dumps(orjson.loads(SINGLE), ensure_ascii=True).encode(),
        # an escaped quote and a colon inside a string are not keys
        encode_event(event(attributes={"note": 'say "hi": ok'})),
    ],
)
def test_records_without_a_repeated_key_are_read_as_before(value: bytes) -> None:
    assert decode_columns(value).events() == decode_record(value)


def test_minus_zero_is_the_count_zero_and_minus_zero_point_zero_is_not_a_count() -> None:
    count = b'"reasoning_output_tokens":100'
    assert count in SINGLE
    zero = SINGLE.replace(count, b'"reasoning_output_tokens":0')
    minus = SINGLE.replace(count, b'"reasoning_output_tokens":-0')
    assert decode_record(minus) == decode_record(zero)
    assert decode_record(minus)[0].reasoning_output_tokens == 0
    error = _rejected(SINGLE.replace(count, b'"reasoning_output_tokens":-0.0'))
    assert error.field == "reasoning_output_tokens" and "integer" in error.message
