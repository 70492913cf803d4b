"""Errors the API answers with: a status, one line for the client, never internals."""

from __future__ import annotations

import logging
import uuid
from typing import Any

import orjson

from tokenops.errors import TokenopsError

logger = logging.getLogger(__name__)


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

    def json(self) -> bytes:
        return orjson.dumps(self.body())


def opaque_500(path: str, exc: BaseException) -> bytes:
    """The body of a 500: an `error_id` that is logged with the traceback, nothing else."""
    error_id = uuid.uuid4().hex[:12]
    logger.error("request failed error_id=%s path=%s", error_id, path, exc_info=exc)
    return orjson.dumps({"error": "internal error", "error_id": error_id})
