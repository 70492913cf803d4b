"""The producer SDK inference nodes embed: validated, batched, never silently lost.

This folder is the SDK alone (the fleet simulator lives in `tokenops.simulate`). It
imports the contract (`tokenops.schemas`) and tokenops core, never the worker or sinks.

Modules: `producer` (`UsageProducer`: send, sync, flush, close), `batcher` (per-tenant
batches as columns), `delivery` (produced, acknowledged or spooled), `spool` (the
durable local spool), `signing` (the record signature header), `metrics`, `settings`
(`ProducerSettings`), `errors`; `http/` (the HTTP ingest that the API serves).
"""

from tokenops.producers.errors import (
    ProducerBackpressureError,
    ProducerClosedError,
    ProducerError,
    SpoolError,
)
from tokenops.producers.producer import UsageProducer
from tokenops.producers.settings import ProducerSettings

__all__ = [
    "ProducerBackpressureError",
    "ProducerClosedError",
    "ProducerError",
    "ProducerSettings",
    "SpoolError",
    "UsageProducer",
]
