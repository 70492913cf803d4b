"""The root of every error tokenops raises on purpose.

A `TokenopsError` is meant for a person: its message says what failed and with which
value, and `hint` says what to do. The CLI prints both on one line each and exits 1;
anything else that escapes is a bug and keeps its traceback.
"""

from __future__ import annotations


class TokenopsError(Exception):
    """An expected failure with a message for a person and an optional remedy."""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if self.hint is None else f"{self.message} ({self.hint})"


class ConfigError(TokenopsError):
    """One or more settings are invalid; `problems` has one line per setting."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__(
            "invalid settings:\n" + "\n".join(f"  {p}" for p in problems),
            hint="fix the TOKENOPS_* environment variables named above",
        )

    def __str__(self) -> str:
        return self.message
