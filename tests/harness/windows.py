"""Closed windows as the worker publishes them, for feeding the sinks' states."""

from __future__ import annotations

from tokenops.schemas.aggregates import WindowTotals


def window_totals(
    tenant: str,
    model: str,
    start_ms: int,
    *,
    input_tokens: int,
    output_tokens: int = 0,
    revision: int = 1,
    events: int = 1,
    emitted_at_ms: int | None = None,
) -> WindowTotals:
    """A one-minute window of input and output tokens (no cached or reasoning ones), its
    events at its first millisecond, emitted 95 s after its start unless told."""
    return WindowTotals(
        tenant_id=tenant,
        model=model,
        window_start_ms=start_ms,
        window_size_s=60,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cache_read_input_tokens=0,
        cache_creation_input_tokens=0,
        reasoning_output_tokens=0,
        event_count=events,
        first_event_time_ms=start_ms,
        last_event_time_ms=start_ms + 1,
        revision=revision,
        emitted_at_ms=start_ms + 95_000 if emitted_at_ms is None else emitted_at_ms,
    )
