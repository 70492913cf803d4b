"""Helpers for the billing-store tests: window totals and usage events built by hand."""

from __future__ import annotations

from datetime import UTC, datetime

from tokenops.schemas import WindowTotals
from tokenops.schemas.event import UsageEvent


def ms(*args: int) -> int:
    """UTC epoch milliseconds of datetime(*args)."""
    return int(datetime(*args, tzinfo=UTC).timestamp() * 1000)  # type: ignore[misc]


def window(
    tenant: str,
    model: str,
    start_ms: int,
    *,
    revision: int = 1,
    events: int = 1,
    input_tokens: int = 1000,
    output_tokens: int = 500,
    cache_read: int = 100,
    cache_creation: int = 10,
    reasoning: int = 50,
    size_s: int = 60,
) -> WindowTotals:
    """A window whose totals are `events` times the per-event counts given."""
    return WindowTotals(
        tenant_id=tenant,
        model=model,
        window_start_ms=start_ms,
        window_size_s=size_s,
        input_tokens=input_tokens * events,
        output_tokens=output_tokens * events,
        cache_read_input_tokens=cache_read * events,
        cache_creation_input_tokens=cache_creation * events,
        reasoning_output_tokens=reasoning * events,
        event_count=events,
        first_event_time_ms=start_ms,
        last_event_time_ms=start_ms + size_s * 1000 - 1,
        revision=revision,
        emitted_at_ms=start_ms + size_s * 1000 + 5000,
    )


def event(
    tenant: str, model: str, time_ms: int, n: int, *, source: str = "//node/test", **tokens: int
) -> UsageEvent:
    counts = {
        "input_tokens": 1000,
        "output_tokens": 500,
        "cache_read_input_tokens": 100,
        "cache_creation_input_tokens": 10,
        "reasoning_output_tokens": 50,
        **tokens,
    }
    return UsageEvent(
        id=f"evt-{n}",
        source=source,
        time=datetime.fromtimestamp(time_ms / 1000, UTC),
        tenant_id=tenant,
        model=model,
        provider="openai",
        **counts,
    )
