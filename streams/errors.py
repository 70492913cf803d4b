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


class PlacementError(WorkerError):
    """The usage topic's partition count is not the one a partition's state was built
    with: tenants would be counted in new home partitions, apart from their state."""

    def __init__(self, partition: int, stored: int, current: int) -> None:
        self.partition, self.stored, self.current = partition, stored, current
        super().__init__(
            f"partition {partition}: the usage topic has {current} partitions, "
            f"its state was built with {stored}",
            hint="restore the partition count, or start a new app id as docs/operations.md"
            " (Change the partition count) describes",
        )
