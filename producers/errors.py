"""Errors of the producer SDK; each says what failed and what to do."""

from __future__ import annotations

from pathlib import Path

from tokenops.errors import TokenopsError


class ProducerError(TokenopsError):
    """The producer cannot accept or keep an event."""


class ProducerBackpressureError(ProducerError):
    """The local queue stayed full for the whole bounded wait; the event was NOT accepted."""

    def __init__(self, outstanding: int, limit: int, waited_s: float) -> None:
        self.outstanding = outstanding
        self.limit = limit
        self.waited_s = waited_s
        super().__init__(
            f"producer queue full: {outstanding} events outstanding (limit {limit}) "
            f"for {waited_s:.1f}s; this event was not accepted",
            hint="retry later, slow down, or raise TOKENOPS_PRODUCER_MAX_OUTSTANDING_EVENTS",
        )


class ProducerClosedError(ProducerError):
    def __init__(self) -> None:
        super().__init__("the producer is closed", hint="create a new UsageProducer")


class SpoolError(ProducerError):
    """The durable spool cannot be written: events could be lost, so this is loud."""

    def __init__(self, path: Path, reason: str) -> None:
        self.path = path
        super().__init__(
            f"cannot write the producer spool {path}: {reason}",
            hint="free disk space or point TOKENOPS_PRODUCER_SPOOL_DIR at a writable directory",
        )
