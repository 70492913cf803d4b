"""GET /v1/usage, /v1/invoices/{tenant} and /v1/quotas/{tenant} on a live `tokenops api`:
billing reads from the embedded ClickHouse store, quota checks from the real topics,
each only for the key's own tenant (admin: any)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import orjson
import pytest
from confluent_kafka import Producer

from tests.api_server import ApiServer, full_env, start_api
from tests.clickhouse_helpers import ms, window
from tokenops.quotas.usage import usage_of
from tokenops.schemas.quota import QuotaDefinition
from tokenops.settings import KafkaSettings

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]


@pytest.fixture
def api(
    kafka_settings: KafkaSettings, new_topic: Callable[..., str], chdb_dsn: str, tmp_path: Path
) -> Iterator[ApiServer]:
    windows = [
        window("acme", "gpt-4o", ms(2026, 10, 5, 1, 0), events=3),
        window("acme", "o3", ms(2026, 10, 6, 2, 0), events=1),
        window("globex", "gpt-4o", ms(2026, 10, 5, 1, 0), events=7),
    ]
    env = full_env(new_topic, chdb_dsn, tmp_path, windows)
    server = start_api(kafka_settings, new_topic("usage"), tmp_path, ["acme", "globex"], env)
    yield server
    server.process.stop()


def get(api: ApiServer, path: str, key: str) -> tuple[int, dict[str, object]]:
    status, _, body = api.request("GET", path, key=key)
    return status, orjson.loads(body)


def test_usage_and_invoices_of_the_keys_tenant_only(api: ApiServer) -> None:
    path = "/v1/usage?tenant=acme&from=2026-10-01&to=2026-11-01&by=model"
    status, usage = get(api, path, "acme")
    assert status == 200, usage
    rows = {row["model"]: row for row in usage["rows"]}  # type: ignore[attr-defined]
    assert (rows["gpt-4o"]["input_tokens"], rows["o3"]["event_count"]) == (3000, 1)
    # no sink ran, so no partition watermark: nothing is final yet (docs/bi.md)
    assert usage["open"] is True and usage["final"] is False and usage["as_of"] is None
    assert get(api, path.replace("acme", "globex"), "acme")[0] == 403
    assert get(api, path.replace("acme", "globex"), "admin")[0] == 200
    assert get(api, path.replace("by=model", "by=week"), "acme")[0] == 400
    # by region sums the window totals (no raw events stored here); no region is ''
    status, by_region = get(api, path.replace("by=model", "by=region"), "acme")
    assert (status, by_region["by"]) == (200, "region")
    found = {(r["bucket"], r["model"], r["event_count"]) for r in by_region["rows"]}  # type: ignore[attr-defined]
    assert found == {("", "gpt-4o", 3), ("", "o3", 1)}
    assert api.request("GET", path, key=None)[0] == 401

    status, bill = get(api, "/v1/invoices/acme?month=2026-10", "acme")
    assert status == 200, bill
    assert bill["final"] is False and bill["number"] is None and bill["tenant_id"] == "acme"
    lines = {(line["model"], line["token_type"]): line for line in bill["lines"]}  # type: ignore[attr-defined]
    # input is billed without its cached part: 3 events x (1000 - 100 read - 10 written)
    assert lines[("gpt-4o", "input_tokens")]["quantity"] == 3 * (1000 - 100 - 10)
    assert set(bill["totals"]) == {line["currency"] for line in lines.values()}  # type: ignore[arg-type]
    assert get(api, "/v1/invoices/globex?month=2026-10", "acme")[0] == 403


def test_quota_check_from_the_topics(api: ApiServer, kafka_settings: KafkaSettings) -> None:
    producer = Producer(kafka_settings.librdkafka())
    quota = QuotaDefinition(tenant_id="acme", name="daily", period="day", limit=10_000)
    producer.produce(api.env["TOKENOPS_TOPIC_QUOTAS"], quota.to_bytes(), key=quota.key.encode())
    now = int(time.time() * 1000)
    start = now - now % 60_000 - 120_000
    totals = window("acme", "gpt-4o", start, events=2, input_tokens=1000, output_tokens=500)
    producer.produce(
        api.env["TOKENOPS_TOPIC_AGGREGATES"], totals.to_bytes(), key=totals.key.encode()
    )
    producer.flush(10)
    deadline = time.monotonic() + 30
    while True:
        status, check = get(api, "/v1/quotas/acme", "acme")
        if status == 200 and check["quotas"]:
            break
        assert time.monotonic() < deadline, (status, check)
        time.sleep(0.5)
    [daily] = check["quotas"]  # type: ignore[misc]
    usage = totals.input_tokens + totals.output_tokens + totals.reasoning_output_tokens
    expected_usage = float(usage_of(quota, list(totals.tokens().values())))
    assert daily["usage"] == expected_usage and daily["limit"] == 10_000, (daily, usage)
    assert daily["remaining"] == 10_000 - expected_usage
    assert daily["allowed"] is True and check["allowed"] is True
    assert daily["resets_at"].endswith("T00:00:00.000Z")
    assert get(api, "/v1/quotas/acme", "globex")[0] == 403
    status, other = get(api, "/v1/quotas/globex", "admin")
    assert (status, other["quotas"], other["allowed"]) == (200, [], True)
