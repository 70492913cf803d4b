"""The HTTP ingest of usage events: CloudEvents (structured, batch, binary), the columnar
batch and OTLP GenAI spans, decoded by the one decoder and produced by the SDK.

Modules: `cloudevents` (CloudEvents and tokenops batches over HTTP), `otlp` (GenAI spans
to usage events), `durability` (answering once the events are durable).
"""

from tokenops.producers.http.cloudevents import (
    EventProblem,
    IngestRejectedError,
    decode_body,
    decode_request,
)
from tokenops.producers.http.durability import DurableSender, NotDurableError
from tokenops.producers.http.otlp import OtlpResult, spans_to_events

__all__ = [
    "DurableSender",
    "EventProblem",
    "IngestRejectedError",
    "NotDurableError",
    "OtlpResult",
    "decode_body",
    "decode_request",
    "spans_to_events",
]
