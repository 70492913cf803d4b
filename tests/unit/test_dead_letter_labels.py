"""Dead-letter metrics name the broken field or rule, bounded, the same in worker and sink.

Each malformed record goes through the worker's real partition logic; its dead letter's
`tokenops.dlq.field` header then feeds the Prometheus sink's state, as the sink reads it
from the dead-letter topic (tests/integration/test_prometheus_sink.py does that part over
a real broker).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import orjson
from prometheus_client import CollectorRegistry

from tests.unit.test_prometheus_state import registry_for
from tests.unit.test_stream_partition import T0, _record, _state
from tokenops.deadletters import DLQ_FIELD, OTHER, dead_letter_label
from tokenops.simulate.malformed import MALFORMED_KINDS, malformed_record
from tokenops.sinks.prometheus.state import ExporterState
from tokenops.streams.metrics import WorkerMetrics

FIELDS = {
    "id": "e1",
    "source": "//node/1",
    "time": datetime.fromtimestamp(T0 / 1000, UTC),
    "tenant_id": "acme",
    "model": "m1",
    "provider": "p",
    "input_tokens": 10,
    "output_tokens": 4,
}


def _hostile_records() -> dict[str, bytes]:
    records = {kind: malformed_record(kind, dict(FIELDS))[1] for kind in MALFORMED_KINDS}
    _, valid = malformed_record("missing-tenant", dict(FIELDS))
    ce = orjson.loads(valid)
    ce["data"]["tenant_id"] = "acme"
    # A field name the producer chose must not become a label value of its own.
    records["producer-named-field"] = orjson.dumps({**ce, "data": {**ce["data"], "x-zz9": 1}})
    records["keyed-as-another-tenant"] = orjson.dumps(
        {**ce, "data": {**ce["data"], "tenant_id": "zeta"}}
    )
    ahead = datetime.fromtimestamp((T0 + 3 * 3_600_000) / 1000, UTC).isoformat()
    records["far-future"] = orjson.dumps({**ce, "time": ahead.replace("+00:00", "Z")})
    records["duplicate-json-key"] = orjson.dumps(ce).replace(
        b'"model":', b'"model":"m0","model":', 1
    )
    return records


def test_each_kind_of_bad_record_gets_its_own_bounded_label(tmp_path: Path) -> None:
    records = _hostile_records()
    state = _state(tmp_path / "p0")
    outputs, _, counts = state.process(
        [_record(offset, value) for offset, value in enumerate(records.values())], T0
    )
    assert counts.dead_lettered == len(records)
    fields = [dict(out.headers or [])[DLQ_FIELD].decode() for out in outputs]
    labels = dict(zip(records, map(dead_letter_label, fields), strict=True))
    assert labels == {
        "truncated-json": "record",
        "not-utf8": "record",
        "unknown-schema-version": "schema_version",
        "missing-tenant": "tenant_id",
        "negative-tokens": "input_tokens",
        "pipe-in-tenant": "tenant_id",
        "string-tokens": "output_tokens",
        "producer-named-field": OTHER,
        "keyed-as-another-tenant": "key",
        "far-future": "future",
        "duplicate-json-key": "duplicate_key",
    }

    worker = CollectorRegistry()
    WorkerMetrics(worker).record(counts)
    sink = ExporterState()
    sink_registry = registry_for(sink)
    for offset, field in enumerate(fields):
        sink.on_dead_letter(field, ("usage", "0", str(offset)))
    for label in set(labels.values()):  # one vocabulary: the same count under each label
        expected = sum(1 for v in labels.values() if v == label)
        assert (
            worker.get_sample_value("tokenops_worker_dead_letters_total", {"field": label})
            == expected
        )
        assert (
            sink_registry.get_sample_value("tokenops_dead_letter_records_total", {"field": label})
            == expected
        )


def test_labels_stay_bounded_whatever_the_header_says() -> None:
    sink = ExporterState()
    registry = registry_for(sink)
    for i in range(1000):
        sink.on_dead_letter(f"x-{i}", ("usage", "0", str(i)))
    sink.on_dead_letter(None, ("usage", "0", "missing-header"))
    sink.on_dead_letter("future", ("usage", "0", "late"))
    sink.on_dead_letter("future", ("usage", "0", "late"))  # re-published: counted once
    assert dict(sink.dead_letters) == {OTHER: 1001, "future": 1}
    assert registry.get_sample_value("tokenops_dead_letter_records_total", {"field": OTHER}) == 1001
