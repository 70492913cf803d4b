"""The demo's other two doors into the pipeline: CloudEvents batches and OTLP GenAI spans
sent to `tokenops api serve`, each event counted in the run's ledger.

Each door writes its own tenants (`<prefix>http-01`, `<prefix>otlp-01`, ...): the
quotas and alerts of the simulator's tenants stay as the ledger predicts them, and the
usage read back from ClickHouse says which door every counted event came through.
The OTLP door uses the real opentelemetry-sdk exporter, a dev extra: without it the
door is skipped (`otlp_skipped` says why) and the rest of the demo runs.
"""

from __future__ import annotations

import random
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from tokenops.simulate.ledger import Ledger
from tokenops.simulate.simulator import DEFAULT_MODELS

DOORS = ("sdk", "http", "otlp")
_BATCH = 500  # CloudEvents per POST
_TENANTS_PER_DOOR = 3


@dataclass
class DoorTraffic:
    """Events sent per door; `otlp_skipped` names why OTLP was not sent, if it was not."""

    sent: dict[str, int] = field(default_factory=lambda: dict.fromkeys(DOORS, 0))
    otlp_skipped: str = ""


def door_of(tenant: str, prefix: str) -> str:
    """The door a tenant's events came through (`door_tenants` names them)."""
    name = tenant.removeprefix(prefix)
    return next((door for door in DOORS[1:] if name.startswith(f"{door}-")), "sdk")


def door_tenants(prefix: str, door: str) -> list[str]:
    return [f"{prefix}{door}-{k:02d}" for k in range(1, _TENANTS_PER_DOOR + 1)]


def _usage(rng: random.Random) -> dict[str, Any]:
    model, provider, _ = rng.choice(DEFAULT_MODELS)
    inp, out = rng.randint(100, 4000), rng.randint(10, 800)
    return {
        "model": model,
        "provider": provider,
        "input_tokens": inp,
        "output_tokens": out,
        "cache_read_input_tokens": rng.randint(0, inp // 2),
        "reasoning_output_tokens": rng.randint(0, out // 2),
    }


def _now_ms() -> tuple[int, datetime]:
    """Now to the millisecond, the precision of an event's time."""
    ms = int(time.time() * 1000)
    return ms, datetime.fromtimestamp(ms / 1000, UTC)


def send_cloudevents(url: str, key: str, prefix: str, count: int, ledger: Ledger) -> int:
    """POST `count` events as CloudEvents batches; each 200 means durable, so each
    accepted event goes into the ledger. Returns the events accepted."""
    rng, tenants, sent = random.Random(count), door_tenants(prefix, "http"), 0
    while sent < count:
        batch, fields = [], []
        for _ in range(min(_BATCH, count - sent)):
            data = {"schema_version": 1, "tenant_id": rng.choice(tenants), **_usage(rng)}
            _, moment = _now_ms()
            stamp = moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
            batch.append({"specversion": "1.0", "type": "ai.tokenops.usage",
                          "source": "//demo/http", "id": uuid.uuid4().hex, "time": stamp,
                          "data": data})  # fmt: skip
            fields.append({**data, "time": moment})
        request = urllib.request.Request(
            url + "/v1/events",
            orjson.dumps(batch),
            {"Authorization": f"Bearer {key}",
             "Content-Type": "application/cloudevents-batch+json"},
        )  # fmt: skip
        with urllib.request.urlopen(request, timeout=60) as answer:
            accepted = int(orjson.loads(answer.read())["accepted"])
        if accepted != len(batch):
            raise RuntimeError(f"the API took {accepted} of {len(batch)} events")
        for event in fields:
            ledger.count_fields(event)
        sent += accepted
    return sent


def send_spans(url: str, key: str, prefix: str, count: int, ledger: Ledger) -> int:
    """Export `count` GenAI spans with opentelemetry-sdk's OTLP/HTTP exporter, one
    tracer provider per tenant (the tenant is a resource attribute of an admin key's
    spans). Raises ImportError when the SDK is not installed."""
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExportResult

    class CheckedExporter(OTLPSpanExporter):
        """Remembers a failed export: the batch processor only logs it."""

        failures = 0

        def export(self, spans: Any) -> SpanExportResult:
            result = super().export(spans)
            self.failures += result is not SpanExportResult.SUCCESS
            return result

    rng, tenants = random.Random(count), door_tenants(prefix, "otlp")
    sent = 0
    for index, tenant in enumerate(tenants):
        share = count // len(tenants) + (index < count % len(tenants))
        exporter = CheckedExporter(
            endpoint=url + "/v1/traces", headers={"Authorization": f"Bearer {key}"}
        )
        provider = TracerProvider(resource=Resource({"tokenops.tenant_id": tenant}))
        provider.add_span_processor(BatchSpanProcessor(exporter, max_export_batch_size=512))
        tracer = provider.get_tracer("tokenops.demo")
        for _ in range(share):
            usage = _usage(rng)
            ms, moment = _now_ms()
            span = tracer.start_span("chat " + usage["model"])
            span.set_attributes({
                "gen_ai.operation.name": "chat",
                "gen_ai.provider.name": usage["provider"],
                "gen_ai.response.model": usage["model"],
                "gen_ai.usage.input_tokens": usage["input_tokens"],
                "gen_ai.usage.output_tokens": usage["output_tokens"],
                "gen_ai.usage.cache_read.input_tokens": usage["cache_read_input_tokens"],
                "gen_ai.usage.reasoning.output_tokens": usage["reasoning_output_tokens"],
            })  # fmt: skip
            span.end(end_time=ms * 1_000_000)
            ledger.count_fields({**usage, "tenant_id": tenant, "time": moment})
        provider.shutdown()  # flushes: every span exported (or the check below fails)
        if exporter.failures:
            raise RuntimeError(f"{exporter.failures} OTLP exports of {tenant} failed")
        sent += share
    return sent
