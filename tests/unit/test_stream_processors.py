"""Partition processors ride the worker's state; the counters account for every record."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

from tests.unit.test_stream_partition import T0, _event, _record, _state
from tokenops.schemas.columns import EventColumns
from tokenops.schemas.wire import encode_batch, encode_event
from tokenops.streams import OutputRecord
from tokenops.streams.metrics import WorkerMetrics
from tokenops.streams.state.delta import StateDelta
from tokenops.streams.state.store import PartitionStore


class TenantCounter:
    """A toy processor: events per tenant, and an output each time a tenant reaches 2."""

    name = "counter"

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}
        self.seen: list[str] = []

    def load(self, state: Mapping[str, Any]) -> None:
        self.counts = {k: int(v) for k, v in state.items()}

    def apply(
        self, columns: Sequence[EventColumns], *, now_ms: int
    ) -> tuple[list[OutputRecord], dict[str, Any]]:
        outputs, delta = [], {}
        for e in (event for part in columns for event in part.events()):
            self.seen.append(e.id)
            n = self.counts[e.tenant_id] = self.counts.get(e.tenant_id, 0) + 1
            delta[e.tenant_id] = n
            if n == 2:
                outputs.append(OutputRecord("alerts", e.tenant_id.encode(), b"2"))
        return outputs, delta


def test_processor_sees_accepted_events_only_and_its_state_survives(tmp_path: Path) -> None:
    counter = TenantCounter()
    state = _state(tmp_path / "p0", processors=[counter])
    batch = encode_batch([_event(1, T0), _event(2, T0 + 1), _event(1, T0)])
    outputs, delta, _ = state.process([_record(0, batch), _record(1, b"junk")], T0)
    state.commit(delta, 1)
    assert counter.seen == ["e1", "e2"]  # not the duplicate, not the dead letter
    assert [o.topic for o in outputs] == ["dlq", "alerts"]
    assert delta.processors["counter"] == {"acme": 2}
    state.store.close()
    restored = TenantCounter()
    _state(tmp_path / "p0", processors=[restored])
    assert restored.counts == {"acme": 2}
    fresh = PartitionStore(tmp_path / "rebuilt", bucket_ms=3_600_000, window_ms=60_000)
    fresh.apply(StateDelta.from_bytes(delta.to_bytes()), 1, "me")
    assert fresh.processor_state("counter") == {"acme": 2}


def test_counters_prove_every_record_is_counted_or_dead_lettered(tmp_path: Path) -> None:
    registry = CollectorRegistry()
    metrics = WorkerMetrics(registry)
    state = _state(tmp_path / "p0")
    records = [
        _record(0, encode_batch([_event(1, T0), _event(2, T0), _event(1, T0)])),
        _record(1, b"{broken"),
        _record(2, encode_event(_event(2, T0))),
    ]
    _, delta, counts = state.process(records, T0)
    state.commit(delta, 1)
    metrics.record(counts)
    _, _, replay = state.process(records, T0)  # a replay after a crash: all skipped
    metrics.record(replay)

    def value(name: str, **labels: str) -> float:
        return registry.get_sample_value(name, labels) or 0.0

    counted = value("tokenops_worker_records_total", outcome="counted")
    dead = value("tokenops_worker_records_total", outcome="dead_lettered")
    assert (counted, dead) == (2, 1)
    assert value("tokenops_worker_records_total", outcome="replayed") == 3
    assert value("tokenops_worker_events_total", outcome="counted") == 2
    assert value("tokenops_worker_events_total", outcome="duplicate") == 2
    assert value("tokenops_worker_dead_letters_total", field="record") == 1
    assert "records_counted=2 forwarded=0 dead_lettered=1" in metrics.summary()
