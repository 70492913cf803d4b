"""The producer SDK inference nodes embed: validated, batched, never silently lost."""

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
