"""No tenant value can break a ClickHouse query or a metrics line.

Two layers. The event contract rejects identifiers outside `[A-Za-z0-9][A-Za-z0-9._:@/-]`
at the door (the worker dead-letters them, tests/e2e/test_hostile_input.py). Behind it,
the stores must not depend on that: here hostile strings are written as tenants and
models straight into a real chDB store and a real exporter state, and the billing
queries (bound parameters) and the Prometheus exposition (escaped label values, checked
by both prometheus_client's parser and Prometheus's own `promtool`) must treat them as
plain data.
"""

from __future__ import annotations

import shutil
import subprocess
import threading
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from tests.clickhouse_helpers import ms, window
from tokenops.errors import TokenopsError
from tokenops.schemas import build_event
from tokenops.schemas.decode import decode_record
from tokenops.schemas.errors import InvalidEventError
from tokenops.schemas.wire import encode_event
from tokenops.sinks.clickhouse import ClickHouseSettings, ClickHouseStore, open_store
from tokenops.sinks.clickhouse.billing import invoice, usage
from tokenops.sinks.clickhouse.reconcile import reconcile
from tokenops.sinks.clickhouse.service import prepare_store
from tokenops.sinks.clickhouse.writer import ClickHouseWriter
from tokenops.sinks.prometheus.collector import StateCollector
from tokenops.sinks.prometheus.state import ExporterState

HOSTILE = [
    "acme' OR '1'='1",
    "acme'; DROP TABLE window_totals; --",
    "acme\\' OR 1=1 --",
    "{tenant:String}",
    "acme` UNION SELECT * FROM system.users --",
    'acme"} or vector(1) #',
    'acme",model="x',
    "acme\ntokenops_fake_total 1e9",
    "acme\\",
    "acme\x00nul",
    "\u0430cme",  # Cyrillic a
    "ac\u200bme",  # zero-width space
    "gpt\u202e4o",  # right-to-left override
    "💸" * 40,
    "",
]
NOV = datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC)


@pytest.mark.parametrize("value", HOSTILE)
def test_the_contract_rejects_hostile_identifiers_at_the_door(value: str) -> None:
    fields = {
        "id": "e1",
        "source": "//node/1",
        "time": datetime.now(UTC),
        "tenant_id": "acme",
        "model": "gpt-4o",
        "provider": "openai",
        "input_tokens": 1,
        "output_tokens": 1,
    }
    for name in ("tenant_id", "model"):
        with pytest.raises(InvalidEventError) as caught:
            build_event({**fields, name: value})
        assert caught.value.field == name
        record = encode_event(build_event(fields)).replace(b'"acme"', _json(value), 1)
        if name == "tenant_id":
            with pytest.raises(InvalidEventError):
                decode_record(record)


def _json(value: str) -> bytes:
    import orjson

    return orjson.dumps(value)


@pytest.fixture
def store(chdb_dsn: str, tmp_path: Path) -> Iterator[ClickHouseStore]:
    with open_store(ClickHouseSettings(url=chdb_dsn, http_port=0), tmp_path) as opened:
        prepare_store(opened, None)
        yield opened


def test_billing_queries_bind_hostile_tenants_as_plain_values(store: ClickHouseStore) -> None:
    """Each hostile tenant sees exactly its own usage; nobody else's, nothing dropped."""
    writer = ClickHouseWriter(store.client)
    start = ms(2026, 11, 3, 10, 0)
    tenants = ["acme", *HOSTILE]
    writer.write_windows(
        window(tenant, "gpt-4o", start, events=i + 1) for i, tenant in enumerate(tenants)
    )
    for i, tenant in enumerate(tenants):
        rows = usage(store.client, tenant, *NOV, "model").rows
        assert [(r["model"], r["event_count"]) for r in rows] == [("gpt-4o", i + 1)], tenant
        bill = invoice(store.client, tenant, date(2026, 11, 1))
        quantities = {line.token_type: line.quantity for line in bill.lines}
        assert quantities["input_tokens"] == (1000 - 100 - 10) * (i + 1), tenant
    with pytest.raises(TokenopsError, match="unknown tenant"):  # bound, never SQL
        usage(store.client, "nobody' OR ''='", *NOV, "model")
    tables = {r[0] for r in store.client.query("SHOW TABLES").result_rows}
    assert {"window_totals", "raw_events"} <= tables
    stored = store.client.query("SELECT count() FROM window_totals FINAL").result_rows[0][0]
    assert stored == len(tenants)
    _, differences = reconcile(store.client, *NOV, raw_events=False)
    assert differences == []


def test_metrics_exposition_stays_parseable_with_hostile_label_values() -> None:
    state = ExporterState(max_tenants=1000)
    registry = CollectorRegistry()
    registry.register(StateCollector(state, threading.Lock(), dict, lambda: True))
    start = ms(2026, 11, 3, 10, 0)
    for i, value in enumerate(HOSTILE):
        state.on_window(window(value, "gpt-4o", start, events=i + 1))
        state.on_window(window("acme", value, start + 60_000 * i, events=1))
    text = generate_latest(registry).decode()

    samples = [
        s for family in text_string_to_metric_families(text) for s in family.samples
    ]  # raises on a line it cannot parse
    assert all(s.name.startswith("tokenops_") for s in samples)
    assert not any(s.name.startswith("tokenops_fake") for s in samples)
    events = {
        s.labels["tenant"]: s.value
        for s in samples
        if s.name == "tokenops_events_total" and s.labels["model"] == "gpt-4o"
    }
    for i, value in enumerate(HOSTILE):
        assert events[value] == i + 1, value  # the label value comes back byte for byte
    models = {s.labels["model"] for s in samples if s.name == "tokenops_events_total"}
    assert set(HOSTILE) <= models

    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool (Debian package prometheus) is not installed")
    checked = subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=60
    )
    assert "parsing error" not in checked.stdout + checked.stderr, checked.stderr
