"""Errors of the event contract: one typed error per violated rule, naming field and value."""

from __future__ import annotations

from typing import Any

from tokenops.errors import TokenopsError

_PREVIEW_CHARS = 120


def _preview(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= _PREVIEW_CHARS else text[:_PREVIEW_CHARS] + "..."


class InvalidEventError(TokenopsError):
    """A usage event (or a Kafka record of them) breaks the contract.

    `field` names the offending field (`tenant_id`, `time`, ...) or, for problems of the
    record as a whole, one of `record` (bytes, JSON, size), `content-type`, `specversion`,
    `type`, `data`, `events`, `batch`. `value` is the offending value (for a whole record,
    a short prefix of its bytes), `reason` says which rule it breaks, and `index` is the
    position of the event inside a batch record (None for single events).
    """

    def __init__(self, field: str, value: Any, reason: str, *, index: int | None = None) -> None:
        self.field = field
        self.value = value
        self.reason = reason
        self.index = index
        where = field if index is None else f"events[{index}].{field}"
        super().__init__(
            f"invalid usage event: {where}={_preview(value)}: {reason}",
            hint="see docs/event-contract.md for the rules of each field",
        )

    def at(self, index: int) -> InvalidEventError:
        """The same error, located at position `index` of a batch."""
        return InvalidEventError(self.field, self.value, self.reason, index=index)
