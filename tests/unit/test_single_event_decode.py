"""Records of one CloudEvent: decoded by the per-event rules into a one-row EventColumns,
equal to what the column check gives the same event, and a bad record in a fetch leaves
its neighbours' columns and its own dead-letter reason as `decode_columns` gives them."""

from __future__ import annotations

import time

import orjson
import pytest

from tokenops.schemas import EVENT_HEADERS, InvalidEventError
from tokenops.schemas.columns import one_row_columns, row_columns_of
from tokenops.schemas.decode import decode_columns, decode_fetch, decode_many
from tokenops.schemas.rules import check_fields
from tokenops.schemas.wire import BATCH_HEADERS

NOW_MS = int(time.time() * 1000)
WHEN = time.strftime("%Y-%m-%dT%H:%M:%S.123Z", time.gmtime(NOW_MS / 1000 - 60))


def cloudevent(event_id: str, **data: object) -> dict[str, object]:
    return {
        "specversion": "1.0",
        "type": "ai.tokenops.usage",
        "source": "//node/a",
        "id": event_id,
        "time": WHEN,
        "data": {
            "schema_version": 1,
            "tenant_id": "acme",
            "model": "gpt-x",
            "provider": "acme-ai",
            "input_tokens": 10,
            "output_tokens": 5,
            **data,
        },
    }


def assert_each_as_alone(values: list[bytes], results: list[object]) -> None:
    """Each record's verdict in a fetch is the one it gets alone: its columns, or its
    error with the same field and reason."""
    for value, result in zip(values, results, strict=True):
        try:
            alone: object = decode_columns(value, EVENT_HEADERS, now_ms=NOW_MS)
        except InvalidEventError as exc:
            alone = exc
        if isinstance(alone, InvalidEventError):
            assert isinstance(result, InvalidEventError)
            assert (result.field, str(result)) == (alone.field, str(alone))
        else:
            assert result == alone


@pytest.mark.parametrize("attributes", [{}, {"team": "search"}])
def test_one_row_columns_equal_the_general_builder(attributes: dict[str, str]) -> None:
    fields = {**cloudevent("e1")["data"], "id": "e1", "source": "//node/a", "time": WHEN}
    if attributes:
        fields["attributes"] = attributes
    tenant, row, attrs = check_fields(fields, 0, NOW_MS + 300_000)
    one = one_row_columns(tenant, row, attrs)
    assert one == row_columns_of(tenant, ([v] for v in row), [dict(attrs)] if attrs else None)
    if attrs:
        attrs.clear()  # the columns hold their own copy
    assert one.attributes == ([attributes] if attributes else None)


def test_a_single_event_decodes_as_the_same_event_in_a_batch() -> None:
    for ce in (cloudevent("e1"), cloudevent("e2", project_id="p1", reasoning_output_tokens=2)):
        single = decode_columns(orjson.dumps(ce), EVENT_HEADERS, now_ms=NOW_MS)
        envelope = {"type": "ai.tokenops.usage.batch", "version": 1, "tenant_id": "acme",
                    "events": [ce]}  # fmt: skip
        batch = decode_columns(orjson.dumps(envelope), BATCH_HEADERS, now_ms=NOW_MS)
        assert single == batch
        assert single.events()[0].time_ms == batch.time_ms[0]


@pytest.mark.parametrize("good", [0, 20])  # a few singles go one by one, many by columns
def test_a_bad_record_in_a_fetch_changes_no_other_verdict(good: int) -> None:
    fine = [orjson.dumps(cloudevent(f"fine-{i}")) for i in range(good)]
    values = [
        *fine,
        orjson.dumps(cloudevent("good-1")),
        orjson.dumps(cloudevent("bad", input_tokens=-1)),
        orjson.dumps({**cloudevent("good-2"), "tracestate": "x"}),  # an extension attribute
        orjson.dumps(cloudevent("good-3", attributes={"team": "search"})),
    ]
    results = decode_many([(v, EVENT_HEADERS, NOW_MS) for v in values])
    assert_each_as_alone(values, results)
    bad = results[good + 1]
    assert isinstance(bad, InvalidEventError) and bad.field == "input_tokens"
    kept = [r.id for r in results if not isinstance(r, InvalidEventError)]
    assert kept[good:] == [["good-1"], ["good-2"], ["good-3"]]


def test_many_good_singles_decode_as_each_alone() -> None:
    values = [orjson.dumps(cloudevent(f"e{i}", user_id=f"u{i % 3}")) for i in range(30)]
    for n in (1, 5, 30):  # below and above the per-event threshold
        results = decode_many([(v, EVENT_HEADERS, NOW_MS) for v in values[:n]])
        assert results == [decode_columns(v, EVENT_HEADERS, now_ms=NOW_MS) for v in values[:n]]


@pytest.mark.parametrize(
    "when",
    [
        time.strftime("%Y-%m-%dT%H:%M:%S.007Z", time.gmtime(NOW_MS / 1000 - 3_600)),  # new second
        "2024-02-30T00:00:00.000Z",  # an impossible date, canonical in form
        time.strftime("%Y-%m-%dT%H:%M:%S.5Z", time.gmtime(NOW_MS / 1000 - 60)),  # short fraction
        time.strftime("%Y-%m-%dT%H:%M:%S.123+00:00", time.gmtime(NOW_MS / 1000 - 60)),
        WHEN.replace("T", "t"),
        WHEN[:19] + ".12xZ",
        WHEN[:17] + "6\uff10.123Z",  # a non-ASCII digit in the second
    ],
)
def test_a_fetch_reads_each_time_as_the_event_alone_does(when: str) -> None:
    """The column check reads a time through its second (learned once by the time rule)
    and its `.mmmZ` tail; whatever the time, each record's verdict is its own alone."""
    values = [orjson.dumps(cloudevent(f"e{i}", user_id=f"u{i % 3}")) for i in range(20)]
    values[7] = orjson.dumps({**cloudevent("odd"), "time": when})
    results = decode_many([(v, EVENT_HEADERS, NOW_MS) for v in values])
    assert_each_as_alone(values, results)


def test_singles_of_new_seconds_and_mixed_shapes_take_the_column_check() -> None:
    """Data dicts of differing keys and times of seconds not seen before still go
    through the column check as one chunk, with the times each event has alone."""
    seconds = [time.gmtime(NOW_MS / 1000 - 7_200 - s) for s in (0, 1)]
    values = [
        orjson.dumps(
            {
                **cloudevent(f"s{i}", **({"project_id": "p1"} if i % 2 else {})),
                "time": time.strftime(f"%Y-%m-%dT%H:%M:%S.{i:03d}Z", seconds[i % 2]),
            }
        )
        for i in range(20)
    ]
    fetch = decode_fetch([(v, EVENT_HEADERS, NOW_MS) for v in values])
    assert fetch.mixed is not None
    alone = [decode_columns(v, EVENT_HEADERS, now_ms=NOW_MS) for v in values]
    assert fetch.mixed.events.time_ms == [columns.time_ms[0] for columns in alone]
    assert fetch.mixed.events.project_id == [columns.project_id[0] for columns in alone]
