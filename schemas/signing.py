"""Signed usage records: HMAC-SHA256 over a canonical encoding of the record's events.

A node signs each Kafka record it produces with its own key; the worker checks the
signature against a keyring of key ids. The signature covers the EVENTS as decoded, not
the bytes, so any valid encoding of the same events verifies, and any change to an
event (a token count, a tenant, a time, an added or removed event) does not.

Header `tokenops.signature`, ASCII::

    v1;kid=<key id>;sig=<unpadded base64url of the 32-byte HMAC-SHA256>

The HMAC key is the UTF-8 bytes of the secret; the message is::

    b"tokenops.usage.v1\\n" + canonical_events(events)

`canonical_events` is a JSON array with one object per event, in record order (one
element for a single-event record, every event for a batch record). Each object holds
every field of the decoded `UsageEvent` (defaults included, e.g. `"operation":"chat"`),
minus fields whose value is null and minus `attributes` when it is empty; `time` is an
integer, milliseconds since the Unix epoch (UTC). Keys are sorted at every level, there
is no whitespace, strings are UTF-8 with only the escapes JSON requires. docs/
event-contract.md ("Signed events") has a worked example.

A genuine signature proves which key signed a record; the key's scope (`SigningKey`:
the sources and tenants it may sign for) decides whether that key may speak for the
events in it. Without a scope, node A's key could sign an
event naming node B's `source` and B's next `id`, and B's real event would then be
dropped as a duplicate (`source` + `id` is the deduplication key).

Rules, per event of a signed record (fnmatch globs, case-sensitive, `*` also matches
`/`): `source` must match one of the key's `sources`; `node_id`, when set, must match
one of them too (a node names itself by URI in `source` and by id in `node_id`, so the
list holds both, e.g. `["//node/us-east-1/gpu-17", "gpu-17"]`); `tenant_id` must match
one of the key's `tenants` (default `["*"]`, any tenant).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from fnmatch import translate
from itertools import repeat
from typing import Any

import orjson

from tokenops.schemas.columns import EventColumns
from tokenops.schemas.errors import InvalidEventError
from tokenops.schemas.event import SCHEMA_VERSION, UsageEvent

__all__ = [
    "KEY_ID_PATTERN",
    "MIN_SECRET_BYTES",
    "SCOPE_FIELD",
    "SIGNATURE_HEADER",
    "Keyring",
    "SignatureCheck",
    "SigningKey",
    "canonical_events",
    "signature_header",
    "signature_key_id",
]

SIGNATURE_HEADER = "tokenops.signature"
SIGNATURE_VERSION = "v1"
KEY_ID_PATTERN = r"^[A-Za-z0-9._-]{1,64}$"
_DOMAIN = b"tokenops.usage.v1\n"
_SORTED_FIELDS = tuple(sorted(UsageEvent.model_fields))
_KEY_ID = re.compile(KEY_ID_PATTERN)
_HEADER = re.compile(r"v1;kid=([A-Za-z0-9._-]{1,64});sig=([A-Za-z0-9_-]{43})")


MIN_SECRET_BYTES = 16
SCOPE_FIELD = "signature_scope"  # the dead-letter field of an event outside its key's scope


def _globs(globs: Sequence[str]) -> re.Pattern[str]:
    return re.compile("|".join(f"(?:{translate(glob)})" for glob in globs))


@dataclass(frozen=True, repr=False)
class SigningKey:
    """A keyring entry: the secret, and the `sources` and `tenants` it may sign for."""

    secret: bytes
    sources: tuple[str, ...]
    tenants: tuple[str, ...] = ("*",)
    _source: re.Pattern[str] = field(init=False, compare=False)
    _tenant: re.Pattern[str] = field(init=False, compare=False)

    def __post_init__(self) -> None:
        if len(self.secret) < MIN_SECRET_BYTES:
            raise ValueError(f"secret: under {MIN_SECRET_BYTES} bytes")
        for name in ("sources", "tenants"):
            globs = getattr(self, name)
            if not globs or not all(isinstance(g, str) and g for g in globs):
                raise ValueError(f"{name}: must be a non-empty list of non-empty globs")
        object.__setattr__(self, "_source", _globs(self.sources))
        object.__setattr__(self, "_tenant", _globs(self.tenants))

    def __repr__(self) -> str:  # never the secret
        return f"SigningKey(sources={list(self.sources)}, tenants={list(self.tenants)})"

    def scope_error(self, key_id: str, columns: EventColumns) -> InvalidEventError | None:
        """The error for the first value outside this key's scope; None if all are in."""
        n = len(columns)
        checks = (
            ("source", "sources", self._source, columns.source),
            ("node_id", "sources", self._source, columns.node_id),
            ("tenant_id", "tenants", self._tenant, [columns.tenant_id] * n),
        )
        for name, scope, pattern, values in checks:
            # a batch repeats a few values many times: match each distinct value once
            bad = next((v for v in set(values) if v is not None and not pattern.match(v)), None)
            if bad is None:
                continue
            index = values.index(bad)
            reason = f"out_of_scope: {name} {bad!r} is outside the {scope} of kid {key_id!r}"
            return InvalidEventError(SCOPE_FIELD, bad, reason, index=index if n > 1 else None)
        return None


Signed = EventColumns | Sequence[UsageEvent]  # a record's events, columns preferred


def columns_of(events: Signed) -> EventColumns:
    """The columns of a record's events (the worker and the producer already hold them)."""
    return events if isinstance(events, EventColumns) else EventColumns.from_events(events)


def canonical_events(events: Signed) -> bytes:
    """The signed message's JSON array, built from the record's columns."""
    columns = columns_of(events)
    n = len(columns)
    values = {
        "schema_version": repeat(SCHEMA_VERSION, n),
        "tenant_id": repeat(columns.tenant_id, n),
        "time": columns.time_ms,  # integer milliseconds
        "attributes": repeat(None, n) if columns.attributes is None else columns.attributes,
    }
    ordered = [values[k] if k in values else getattr(columns, k) for k in _SORTED_FIELDS]
    # keys are inserted sorted, which orjson keeps: cheaper than OPT_SORT_KEYS
    rows = [_canonical_row(row) for row in zip(*ordered, strict=True)]
    return orjson.dumps(rows)


def _canonical_row(row: tuple[Any, ...]) -> dict[str, Any]:
    """One event's object: null fields and empty attributes left out, zeros kept."""
    out = {k: v for k, v in zip(_SORTED_FIELDS, row, strict=True) if v is not None}
    attributes = out.get("attributes")
    if attributes is not None:
        if not attributes:
            del out["attributes"]
        elif len(attributes) > 1:
            out["attributes"] = dict(sorted(attributes.items()))
    return out


def _mac(secret: bytes, events: Signed) -> bytes:
    return hmac.new(secret, _DOMAIN + canonical_events(events), hashlib.sha256).digest()


def signature_header(key_id: str, secret: bytes, events: Signed) -> bytes:
    """The `tokenops.signature` header value for a record holding `events`."""
    if not _KEY_ID.match(key_id):
        raise ValueError(f"key id {key_id!r} must match {KEY_ID_PATTERN}")
    sig = base64.urlsafe_b64encode(_mac(secret, events)).rstrip(b"=")
    return b"v1;kid=" + key_id.encode() + b";sig=" + sig


def signature_key_id(headers: Sequence[tuple[str, bytes | None]] | None) -> str | None:
    """The key id a record's `tokenops.signature` header names, None if it has no single
    well-formed header. Says nothing about validity: use it to record which key a
    record claims, after `Keyring.verify` (or the worker's verdict) has judged it."""
    values = [v for k, v in headers or () if k == SIGNATURE_HEADER]
    if len(values) != 1:
        return None
    match = _HEADER.fullmatch((values[0] or b"").decode("ascii", "replace"))
    return None if match is None else match.group(1)


class Keyring:
    """Signing keys by key id; several ids are valid at once, so keys rotate without a
    gap. Each key is bound to the sources and tenants it may sign for (`SigningKey`)."""

    def __init__(self, keys: Mapping[str, SigningKey]) -> None:
        for key_id in keys:
            if not _KEY_ID.match(key_id):
                raise ValueError(f"key id {key_id!r} must match {KEY_ID_PATTERN}")
        self._keys = dict(keys)

    @property
    def key_ids(self) -> list[str]:
        return sorted(self._keys)

    def __repr__(self) -> str:  # never the secrets
        return f"Keyring(key_ids={self.key_ids})"

    def verify(self, events: Signed, headers: Sequence[tuple[str, bytes]] | None) -> str | None:
        """The key id that signed the record, None if it carries no signature header.

        `InvalidEventError(field="signature")` if the signature is malformed, from an
        unknown key, or does not match the events (forged, or edited after signing);
        `InvalidEventError(field="signature_scope")` if it is genuine but an event's
        source, node_id or tenant is outside what the key may sign for.
        """
        values = [v for k, v in headers or () if k == SIGNATURE_HEADER]
        if not values:
            return None
        if len(values) > 1:
            raise InvalidEventError("signature", len(values), "malformed: several signatures")
        raw = values[0] or b""
        text = raw.decode("ascii", "replace")
        match = _HEADER.fullmatch(text)
        if match is None:
            raise InvalidEventError("signature", text[:100], "malformed: expected v1;kid=;sig=")
        key_id, sig = match.groups()
        key = self._keys.get(key_id)
        if key is None:
            raise InvalidEventError("signature", text, f"unknown_key: kid {key_id!r}")
        columns = columns_of(events)
        expected = base64.urlsafe_b64encode(_mac(key.secret, columns)).rstrip(b"=")
        if not hmac.compare_digest(expected, sig.encode()):
            raise InvalidEventError("signature", text, "forged: does not match the events")
        out_of_scope = key.scope_error(key_id, columns)
        if out_of_scope is not None:
            raise out_of_scope
        return key_id


class SignatureCheck:
    """What a consumer lets through: `check(events, headers)` returns, or raises
    `InvalidEventError` (field `signature` or `signature_scope`) for a bad signature, a
    key signing outside its scope and, when `enforce`, a missing signature. Picklable,
    so decoder processes can take a copy."""

    def __init__(self, keyring: Keyring, *, enforce: bool) -> None:
        self.keyring, self.enforce = keyring, enforce

    def __call__(self, events: Signed, headers: Sequence[tuple[str, bytes]] | None) -> None:
        if self.keyring.verify(events, headers) is None and self.enforce:
            raise InvalidEventError("signature", None, f"unsigned: no {SIGNATURE_HEADER} header")
