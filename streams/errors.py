"""Errors of the stream worker."""

from __future__ import annotations

from tokenops.errors import TokenopsError


class WorkerError(TokenopsError):
    """The stream worker cannot go on (state, changelog or output failure)."""


class StateError(WorkerError):
    """The local state store or the changelog is unusable for one partition."""

    def __init__(self, partition: int, message: str, *, hint: str | None = None) -> None:
        self.partition = partition
        super().__init__(f"partition {partition}: {message}", hint=hint)


class DeliveryError(WorkerError):
    """Kafka did not acknowledge an output or changelog record; the batch is not durable."""
