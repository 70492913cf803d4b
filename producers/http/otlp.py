"""OTLP/HTTP traces to usage events: spans that carry the OpenTelemetry GenAI
semantic-convention usage attributes become CloudEvents, checked by the one decoder.

Names follow the GenAI conventions (development status, checked against
opentelemetry-semantic-conventions 0.66b2), with the older names still seen in the wild:

- tokens: `gen_ai.usage.input_tokens` (`gen_ai.usage.prompt_tokens`),
  `gen_ai.usage.output_tokens` (`gen_ai.usage.completion_tokens`),
  `gen_ai.usage.cache_read.input_tokens`, `gen_ai.usage.cache_creation.input_tokens`
  (or the flat `..._input_tokens` spelling), `gen_ai.usage.reasoning.output_tokens`;
- model: `gen_ai.response.model`, else `gen_ai.request.model`;
- provider: `gen_ai.provider.name`, else `gen_ai.system`; operation `gen_ai.operation.name`.

The event id is the trace id and span id in hex, and the source is fixed, so a span
sent twice is counted once. Spans without any usage attribute are ignored (counted).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from tokenops.producers.http.cloudevents import EventProblem, IngestRejectedError, decode_events
from tokenops.schemas import EventColumns

OTLP_SOURCE = "urn:tokenops:otlp"
_TOKENS: dict[str, tuple[str, ...]] = {
    "input_tokens": ("gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens"),
    "output_tokens": ("gen_ai.usage.output_tokens", "gen_ai.usage.completion_tokens"),
    "cache_read_input_tokens": (
        "gen_ai.usage.cache_read.input_tokens",
        "gen_ai.usage.cache_read_input_tokens",
    ),
    "cache_creation_input_tokens": (
        "gen_ai.usage.cache_creation.input_tokens",
        "gen_ai.usage.cache_creation_input_tokens",
    ),
    "reasoning_output_tokens": (
        "gen_ai.usage.reasoning.output_tokens",
        "gen_ai.usage.reasoning_tokens",
    ),
}
_USAGE = frozenset(name for names in _TOKENS.values() for name in names)


@dataclass
class OtlpResult:
    """What one export request became: the events' columns, and the spans refused."""

    parts: list[EventColumns] = field(default_factory=list)
    events: int = 0
    ignored_spans: int = 0
    rejected_spans: int = 0
    errors: list[str] = field(default_factory=list)


def _value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    return None if kind is None else getattr(value, kind)


def _attributes(pairs: Sequence[KeyValue]) -> dict[str, Any]:
    return {pair.key: _value(pair.value) for pair in pairs}


def _first(attributes: dict[str, Any], names: Sequence[str]) -> Any:
    for name in names:
        if name in attributes:
            return attributes[name]
    return None


def span_event(attributes: dict[str, Any], span: Any, tenant: str) -> dict[str, Any]:
    """The CloudEvent of one GenAI span (not yet validated)."""
    data: dict[str, Any] = {"schema_version": 1, "tenant_id": tenant}
    for name, names in _TOKENS.items():
        count = _first(attributes, names)
        if count is not None:
            data[name] = int(count) if isinstance(count, float) and count.is_integer() else count
    data.setdefault("input_tokens", 0)
    data.setdefault("output_tokens", 0)
    data["model"] = _first(attributes, ("gen_ai.response.model", "gen_ai.request.model"))
    data["provider"] = _first(attributes, ("gen_ai.provider.name", "gen_ai.system"))
    operation = attributes.get("gen_ai.operation.name")
    if operation is not None:
        data["operation"] = operation
    end_ns = span.end_time_unix_nano or span.start_time_unix_nano
    moment = datetime.fromtimestamp(end_ns // 1_000_000 / 1000, UTC)
    return {
        "specversion": "1.0",
        "type": "ai.tokenops.usage",
        "source": OTLP_SOURCE,
        "id": span.trace_id.hex() + span.span_id.hex(),
        "time": moment.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "data": data,
    }


def spans_to_events(
    request: ExportTraceServiceRequest,
    tenant_of: Callable[[dict[str, Any]], str | None],
) -> OtlpResult:
    """The usage events of every GenAI span in `request`. `tenant_of(resource
    attributes)` names the tenant, or None to reject that resource's spans (no tenant,
    or one the caller may not write). Invalid spans are rejected one by one; the rest
    are kept (OTLP's partial success)."""
    result = OtlpResult()
    events: list[dict[str, Any]] = []
    for resource_spans in request.resource_spans:
        tenant = tenant_of(_attributes(resource_spans.resource.attributes))
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                attributes = _attributes(span.attributes)
                if not _USAGE.intersection(attributes):
                    result.ignored_spans += 1
                elif tenant is None:
                    result.rejected_spans += 1
                    result.errors.append(f"span {span.span_id.hex()}: no tenant this key may write")
                else:
                    events.append(span_event(attributes, span, tenant))
    if events:
        try:
            result.parts = decode_events(events)
            result.events = len(events)
        except IngestRejectedError as rejected:
            bad = {p.index for p in rejected.problems}
            result.rejected_spans += len(bad)
            result.errors += [_span_error(p, events) for p in rejected.problems]
            good = [event for index, event in enumerate(events) if index not in bad]
            result.parts = decode_events(good) if good else []
            result.events = len(good)
    return result


def _span_error(problem: EventProblem, events: list[dict[str, Any]]) -> str:
    span_id = events[problem.index]["id"][32:] if problem.index is not None else "?"
    return f"span {span_id}: {problem.field}: {problem.reason}"
