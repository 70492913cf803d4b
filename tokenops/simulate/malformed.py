"""Broken records for fault injection: each kind breaks one rule of the contract.

Each is derived from a valid event's fields, so a seed reproduces the same bytes. The
stream worker must dead-letter every one of them unchanged.
"""

from __future__ import annotations

from typing import Any

import orjson

from tokenops.schemas import build_event
from tokenops.schemas.wire import to_cloudevent

MALFORMED_KINDS = (
    "truncated-json",
    "not-utf8",
    "unknown-schema-version",
    "missing-tenant",
    "negative-tokens",
    "pipe-in-tenant",
    "string-tokens",
)


def malformed_record(kind: str, fields: dict[str, Any]) -> tuple[bytes, bytes]:
    """(key, value) of a record that breaks the contract in the way `kind` names."""
    ce = to_cloudevent(build_event(fields, max_future_skew_s=1e9))
    data = ce["data"]
    key = data["tenant_id"].encode()
    if kind == "truncated-json":
        return key, orjson.dumps(ce)[:-7]
    if kind == "not-utf8":
        return key, orjson.dumps(ce).replace(key, key[:2] + b"\xff\xfe" + key[2:], 1)
    if kind == "unknown-schema-version":
        data["schema_version"] = 99
    elif kind == "missing-tenant":
        del data["tenant_id"]
    elif kind == "negative-tokens":
        data["input_tokens"] = -data["input_tokens"] - 1
    elif kind == "pipe-in-tenant":
        data["tenant_id"] = data["tenant_id"] + "|evil"
    elif kind == "string-tokens":
        data["output_tokens"] = str(data["output_tokens"])
    else:
        raise ValueError(f"unknown malformed kind {kind!r}")
    return key, orjson.dumps(ce)
