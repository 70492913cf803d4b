"""OTLP/HTTP from the real OpenTelemetry SDK exporter into `tokenops api`, counted by a
real `tokenops worker`: the window totals equal what the spans carried, a resent span
counts once, spans without usage are ignored and a tenant key cannot write another."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult

from tests.api_server import ApiServer, start_api
from tests.e2e.worker_run import WINDOW_S, WorkerProcess, wait_exact, worker_env
from tokenops.schemas import TOKEN_TYPES
from tokenops.settings import KafkaSettings

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

# (model attribute names, token attributes) per span: current and older names
SPANS = [
    {"gen_ai.provider.name": "openai", "gen_ai.response.model": "gpt-4o",
     "gen_ai.usage.input_tokens": 120, "gen_ai.usage.output_tokens": 30,
     "gen_ai.usage.cache_read.input_tokens": 20, "gen_ai.usage.reasoning.output_tokens": 5},
    {"gen_ai.system": "anthropic", "gen_ai.request.model": "claude-sonnet",
     "gen_ai.usage.prompt_tokens": 7, "gen_ai.usage.completion_tokens": 3,
     "gen_ai.usage.cache_creation.input_tokens": 2},
    {"gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-4o-mini",
     "gen_ai.response.model": "gpt-4o", "gen_ai.usage.input_tokens": 1,
     "gen_ai.usage.output_tokens": 1},
]  # fmt: skip
NAMES = {
    "input_tokens": ("gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens"),
    "output_tokens": ("gen_ai.usage.output_tokens", "gen_ai.usage.completion_tokens"),
    "cache_read_input_tokens": ("gen_ai.usage.cache_read.input_tokens",),
    "cache_creation_input_tokens": ("gen_ai.usage.cache_creation.input_tokens",),
    "reasoning_output_tokens": ("gen_ai.usage.reasoning.output_tokens",),
}


class Recorder(SpanExporter):
    """Keeps every span the SDK finished, so the test can resend them and count them."""

    def __init__(self) -> None:
        self.spans: list[ReadableSpan] = []

    def export(self, spans: object) -> SpanExportResult:
        self.spans += list(spans)  # type: ignore[call-overload]
        return SpanExportResult.SUCCESS


def expected_totals(
    spans: list[ReadableSpan], tenant: str
) -> dict[tuple[str, str, int], list[int]]:
    totals: dict[tuple[str, str, int], list[int]] = defaultdict(lambda: [0] * 6)
    for span in spans:
        attributes = dict(span.attributes or {})
        if not any(name.startswith("gen_ai.usage.") for name in attributes):
            continue
        model = attributes.get("gen_ai.response.model") or attributes["gen_ai.request.model"]
        ms = (span.end_time or 0) // 1_000_000
        row = totals[(tenant, str(model), ms - ms % (WINDOW_S * 1000))]
        for i, token in enumerate(TOKEN_TYPES):
            row[i] += int(next((attributes[n] for n in NAMES[token] if n in attributes), 0))  # type: ignore[call-overload]
        row[5] += 1
    return dict(totals)


@pytest.fixture
def topics(new_topic: Callable[..., str]) -> dict[str, str]:
    return {
        "usage": new_topic("usage", partitions=2),
        "aggregates": new_topic("aggs", partitions=2),
        "dead_letter": new_topic("dlq", partitions=2),
        "quota_alerts": new_topic("alerts", partitions=2),
        "quotas": new_topic("quotas", partitions=1),
    }


def test_otel_sdk_spans_become_exact_window_totals(
    kafka_settings: KafkaSettings, topics: dict[str, str], tmp_path: Path
) -> None:
    env = worker_env(kafka_settings, topics, f"w-{uuid.uuid4().hex[:8]}", tmp_path)
    worker = WorkerProcess(env, tmp_path / "worker", tmp_path / "worker.log")
    api = start_api(kafka_settings, topics["usage"], tmp_path, ["acme"])
    try:
        worker.wait_ready()
        recorder = Recorder()
        provider = TracerProvider(resource=Resource.create({"service.name": "gateway"}))
        tracer = provider.get_tracer("test")
        provider.add_span_processor(SimpleSpanProcessor(recorder))
        for attributes in SPANS * 10:
            with (
                tracer.start_as_current_span("chat", attributes=attributes),
                tracer.start_as_current_span("http.client"),  # no usage: ignored
            ):
                pass
        exporter = OTLPSpanExporter(
            endpoint=api.url + "/v1/traces", headers={"Authorization": f"Bearer {api.keys['acme']}"}
        )
        assert exporter.export(recorder.spans) == SpanExportResult.SUCCESS
        assert exporter.export(recorder.spans[:10]) == SpanExportResult.SUCCESS  # a resend
        expected = expected_totals(recorder.spans, "acme")
        assert sum(row[5] for row in expected.values()) == 30
        got = wait_exact(kafka_settings, topics, expected, timeout_s=60)
        assert got == expected
        metrics = api.request("GET", "/metrics")[2].decode()
        assert "tokenops_api_otlp_spans_ignored_total 35.0" in metrics  # 30 + 5 resent
    finally:
        api.process.stop()
        worker.stop()


def test_otlp_json_with_partial_success_and_tenant_keys(
    api_server: ApiServer,
) -> None:
    span = {
        "traceId": "5b8efff798038103d269b633813fc60c",
        "spanId": "eee19b7ec3c1b174",
        "name": "chat",
        "startTimeUnixNano": "1780000000000000000",
        "endTimeUnixNano": "1780000000500000000",
        "attributes": [
            {"key": "gen_ai.provider.name", "value": {"stringValue": "openai"}},
            {"key": "gen_ai.request.model", "value": {"stringValue": "gpt-4o"}},
            {"key": "gen_ai.usage.input_tokens", "value": {"intValue": "10"}},
            {"key": "gen_ai.usage.output_tokens", "value": {"intValue": "2"}},
        ],
    }
    negative = {"key": "gen_ai.usage.input_tokens", "value": {"intValue": "-5"}}
    bad = {**span, "spanId": "eee19b7ec3c1b175", "attributes": [*span["attributes"][:2], negative]}
    foreign = {"key": "tokenops.tenant_id", "value": {"stringValue": "globex"}}
    body = {
        "resourceSpans": [
            {"resource": {"attributes": []}, "scopeSpans": [{"spans": [span, bad]}]},
            {"resource": {"attributes": [foreign]}, "scopeSpans": [{"spans": [span]}]},
        ]
    }
    status, _, answer = api_server.request(
        "POST",
        "/v1/traces",
        orjson.dumps(body),
        key="acme",
        headers={"Content-Type": "application/json"},
    )
    assert status == 200
    partial = orjson.loads(answer)["partialSuccess"]
    assert partial["rejectedSpans"] == "2"  # the invalid span, and the one for globex
    assert "no tenant" in partial["errorMessage"] and "input_tokens" in partial["errorMessage"]

    # an admin key: the tenant comes from the configured resource attribute, or the span
    # is refused (the first resource has none)
    status, _, answer = api_server.request(
        "POST", "/v1/traces", orjson.dumps(body), headers={"Content-Type": "application/json"}
    )
    assert status == 200
    assert orjson.loads(answer)["partialSuccess"]["rejectedSpans"] == "2"
    metrics = api_server.request("GET", "/metrics")[2].decode()
    assert 'tokenops_api_events_accepted_total{door="otlp"} 2.0' in metrics  # 1 + 1
