"""Errors of quota configuration (kept apart from the worker's own errors module)."""

from __future__ import annotations

from pathlib import Path

from tokenops.errors import TokenopsError


class QuotaError(TokenopsError):
    """A quota could not be loaded, published or evaluated."""


class QuotaFileError(QuotaError):
    """A quota file is missing or holds invalid entries; `problems` has one line each."""

    def __init__(self, path: Path, problems: list[str]) -> None:
        self.path = path
        self.problems = problems
        super().__init__(
            f"invalid quota file {path}:\n" + "\n".join(f"  {p}" for p in problems),
            hint="fix the entries named above (fields are documented in docs/operations.md)",
        )

    def __str__(self) -> str:
        return self.message
