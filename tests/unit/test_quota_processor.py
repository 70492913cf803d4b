"""The quota processor inside a real PartitionState: duplicates and replays alert once."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tokenops.quotas.book import QuotaBook
from tokenops.schemas.columns import EventColumns
from tokenops.schemas.decode import decode_columns
from tokenops.schemas.event import UsageEvent
from tokenops.schemas.quota import QuotaAlert, QuotaDefinition
from tokenops.schemas.wire import encode_batch
from tokenops.streams.partition import InputRecord, PartitionState
from tokenops.streams.quota_processor import QuotaProcessor
from tokenops.streams.state.store import PartitionStore

T0 = 1_750_000_020_000  # a minute boundary in the past
BOOK = QuotaBook([QuotaDefinition(tenant_id="acme", name="daily", period="day", limit=1000)])


def _event(i: int, t_ms: int, tokens: int) -> UsageEvent:
    return UsageEvent(
        id=f"e{i}",
        source="//node/1",
        time=datetime.fromtimestamp(t_ms / 1000, UTC),
        tenant_id="acme",
        model="m1",
        provider="p",
        input_tokens=tokens,
        output_tokens=0,
    )


def _state(path: Path, published: Callable[[int], set[str]] | None = None) -> PartitionState:
    def decode(value: bytes, headers: Any, now_ms: int) -> EventColumns:
        return decode_columns(value, headers, now_ms=now_ms)

    return PartitionState(
        topic="usage",
        partition=0,
        store=PartitionStore(path, bucket_ms=3_600_000, window_ms=60_000),
        owner="me",
        window_s=60,
        lateness_ms=30_000,
        horizon_ms=86_400_000,
        outputs=("aggs", "dlq"),
        decode=decode,
        processors=[QuotaProcessor(BOOK, "alerts", published)],
    )


def _record(offset: int, events: list[UsageEvent]) -> InputRecord:
    return InputRecord(offset, b"acme", encode_batch(events), None, T0 + 10_000_000)


def _alerts(outputs: list[Any]) -> list[str]:
    return [QuotaAlert.from_bytes(o.value).key for o in outputs if o.topic == "alerts"]


def test_duplicates_do_not_count_and_a_replay_repeats_the_same_alert(tmp_path: Path) -> None:
    state = _state(tmp_path / "p0")
    first = [_event(1, T0 + 1, 400), _event(2, T0 + 2, 100), _event(1, T0 + 1, 400)]
    outputs, delta, _ = state.process([_record(0, first)], T0)
    assert _alerts(outputs) == [f"acme|daily|{T0 - T0 % 86_400_000}|50"]
    state.commit(delta, 1)

    batch = [_record(1, [_event(3, T0 + 3, 300), _event(2, T0 + 2, 100)])]
    outputs, _, _ = state.process(batch, T0)
    crossed = _alerts(outputs)
    assert [k.rsplit("|", 1)[1] for k in crossed] == ["80"]
    # Crash before the delta is durable: the recovered partition decides the same again.
    state.store.close()
    recovered = _state(tmp_path / "p0")
    outputs, delta, _ = recovered.process(batch, T0)
    assert _alerts(outputs) == crossed
    recovered.commit(delta, 2)
    recovered.store.close()
    # Once durable, the batch is skipped on replay and nothing is emitted again.
    again = _state(tmp_path / "p0")
    outputs, _, counts = again.process(batch, T0)
    assert _alerts(outputs) == [] and counts.skipped == 1
    again.store.close()


def test_a_crossing_published_before_the_crash_is_not_published_again(tmp_path: Path) -> None:
    state = _state(tmp_path / "p0")
    _, delta, _ = state.process([_record(0, [_event(1, T0 + 1, 400)])], T0)
    state.commit(delta, 1)
    batch = [_record(1, [_event(2, T0 + 2, 700)])]
    outputs, _, _ = state.process(batch, T0)
    published = set(_alerts(outputs))  # produced and acknowledged, then kill -9
    assert len(published) == 3
    state.store.close()

    asked: list[int] = []

    def topic_since(since_ms: int) -> set[str]:
        asked.append(since_ms)
        return published

    recovered = _state(tmp_path / "p0", topic_since)
    outputs, delta, _ = recovered.process(batch, T0)
    assert _alerts(outputs) == [] and len(asked) == 1
    recovered.commit(delta, 2)
    later, _, _ = recovered.process([_record(2, [_event(3, T0 + 3, 5000)])], T0)
    assert _alerts(later) == []  # every threshold is crossed: nothing new, nothing repeated
    recovered.store.close()


def test_the_processor_counts_crossings_replays_and_late_events() -> None:
    from prometheus_client import CollectorRegistry

    from tokenops.streams.quota_metrics import QuotaMetrics

    registry = CollectorRegistry()
    processor = QuotaProcessor(
        BOOK, "alerts", lambda _since: set(), QuotaMetrics(registry, BOOK.__len__)
    )
    processor.load({"~watermark": {"time_ms": 0, "applied_at_ms": 5}})
    processor.already_published = {f"acme|daily|{T0 - T0 % 86_400_000}|50"}
    batch = [_event(1, T0, 900), _event(2, T0 + 49 * 3_600_000, 1)]
    outputs, _ = processor.apply([EventColumns.from_events(batch)], now_ms=T0)
    late = [EventColumns.from_events([_event(3, T0, 5)])]
    processor.apply(late, now_ms=T0)  # its day is past the late horizon now

    def value(name: str) -> float | None:
        return registry.get_sample_value(name)

    assert len(outputs) == 1 and value("tokenops_worker_quota_crossings_total") == 1  # 80 %
    assert value("tokenops_worker_quota_crossings_replayed_total") == 1
    assert value("tokenops_worker_quota_late_ignored_total") == 1
    assert value("tokenops_worker_quotas") == 1
