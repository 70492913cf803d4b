"""Errors the API answers with: a status, one line for the client, never internals."""

from __future__ import annotations

from typing import Any

from tokenops.errors import TokenopsError


class ApiError(TokenopsError):
    """An answer other than 2xx: `status`, a message meant for the client, optional
    JSON `detail` (for example the bad events of a 400) and headers (`Retry-After`)."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        detail: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.detail = detail or {}
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return {"error": self.message, **self.detail}
