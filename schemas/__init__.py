"""The data contracts of tokenops: usage events in, window totals out."""

from tokenops.schemas.aggregates import TOKEN_TYPES, WindowTotals, window_key

__all__ = ["TOKEN_TYPES", "WindowTotals", "window_key"]
