"""What the routes share: the query routes' keys, reader and registry (`QueryState`,
also the ClickHouse sink's listener), and the whole API's (`ApiState`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter

from tokenops.api.keys import KeyLookup
from tokenops.api.settings import ApiSettings
from tokenops.producers.http import DurableSender
from tokenops.sinks.clickhouse.reader import BillingReader

if TYPE_CHECKING:
    from tokenops.api.quotas import QuotaView


class ApiMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.accepted = Counter(
            "tokenops_api_events_accepted_total",
            "Events taken durably over HTTP, by door",
            ["door"],
            registry=registry,
        )
        # The doors' children, looked up once rather than on every request.
        self.accepted_cloudevents = self.accepted.labels("cloudevents")
        self.accepted_otlp = self.accepted.labels("otlp")
        self.rejected = Counter(
            "tokenops_api_events_rejected_total",
            "Events or spans refused as invalid (400, or OTLP partial success)",
            registry=registry,
        )
        self.ignored_spans = Counter(
            "tokenops_api_otlp_spans_ignored_total",
            "OTLP spans without GenAI usage attributes",
            registry=registry,
        )
        self.unavailable = Counter(
            "tokenops_api_unavailable_total",
            "Ingest requests answered 503, by reason",
            ["reason"],
            registry=registry,
        )


@dataclass(kw_only=True)
class QueryState:
    """What /v1/usage, /v1/invoices, /v1/reconcile, /v1/sql and /metrics read."""

    keys: KeyLookup
    registry: CollectorRegistry
    reader: BillingReader | None = None


@dataclass(kw_only=True)
class ApiState(QueryState):
    settings: ApiSettings
    sender: DurableSender
    metrics: ApiMetrics
    quotas: QuotaView | None = None
