"""API keys: stored as SHA-256 hashes in a 0600 file, looked up per request, rotatable.

A key is `tok_<key id>_<secret>`; the file keeps the id, the hash of the whole key, and
the scope: one tenant, or admin (reads every tenant, writes any). Nothing in the file
can be used as a key. The file is re-read when it changes, so `tokenops api new-key`
and `revoke-key` take effect on a running server (rotation: add the new key, move the
clients, revoke the old one). A file group or others can read is refused, as the
signing keyring is.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import orjson

from tokenops.errors import TokenopsError
from tokenops.schemas.event import IDENTIFIER_PATTERN
from tokenops.secrets import shared_file_problem


class ApiKeyError(TokenopsError):
    """The keys file is missing, unreadable, shared or malformed."""


@dataclass(frozen=True)
class ApiKey:
    """The scope of one key: `tenant` for a tenant key, None for an admin key."""

    key_id: str
    tenant: str | None

    @property
    def admin(self) -> bool:
        return self.tenant is None

    def may_access(self, tenant: str) -> bool:
        return self.tenant is None or self.tenant == tenant


class KeyLookup(Protocol):
    """Where a route finds the scope of a presented key (`KeyStore`, or the ClickHouse
    sink's run token beside it: tokenops/api/sink_keys.py)."""

    def lookup(self, key: str) -> ApiKey | None: ...


def digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class KeyStore:
    """The keys of one file, reloaded when its modification time or size changes; the
    file is looked at most every `check_every_s`, so a revoked key stops working within
    that time without a stat call per request."""

    def __init__(self, path: Path, check_every_s: float = 1.0) -> None:
        self.path = path
        self.check_every_s = check_every_s
        self._checked_at = -check_every_s
        self._stamp: tuple[int, int] | None = None
        self._by_hash: dict[str, ApiKey] = {}

    def lookup(self, key: str) -> ApiKey | None:
        now = time.monotonic()
        if now - self._checked_at >= self.check_every_s:
            self._checked_at = now
            self._reload()
        return self._by_hash.get(digest(key))

    def _reload(self) -> None:
        try:
            info = self.path.stat()
        except FileNotFoundError:
            self._by_hash, self._stamp = {}, None
            return
        stamp = (info.st_mtime_ns, info.st_size)
        if stamp != self._stamp:
            self._by_hash = {e["sha256"]: _key(e) for e in read_entries(self.path)}
            self._stamp = stamp


def _key(entry: dict[str, Any]) -> ApiKey:
    return ApiKey(entry["id"], None if entry.get("admin") else entry["tenant"])


def read_entries(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    problem = shared_file_problem(path)
    if problem:
        raise ApiKeyError(f"API keys file {path} {problem}")
    try:
        entries = orjson.loads(path.read_bytes())["keys"]
    except (OSError, orjson.JSONDecodeError, KeyError, TypeError) as exc:
        raise ApiKeyError(f"API keys file {path} is not a tokenops keys file: {exc}") from exc
    return list(entries)


def _write(path: Path, entries: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(orjson.dumps({"keys": entries}, option=orjson.OPT_INDENT_2))
        out.flush()
        os.fsync(out.fileno())
    os.replace(temporary, path)


def new_key(path: Path, tenant: str | None) -> tuple[str, str]:
    """Add a key (tenant-scoped, or admin when `tenant` is None); returns (id, key).
    The key itself is shown once and stored only as its hash."""
    if tenant is not None and not re.fullmatch(IDENTIFIER_PATTERN[1:-1], tenant):
        raise ApiKeyError(f"tenant {tenant!r} is not a valid tenant_id")
    entries = read_entries(path)
    key_id = secrets.token_hex(4)
    key = f"tok_{key_id}_{secrets.token_urlsafe(24)}"
    entry: dict[str, Any] = {"id": key_id, "sha256": digest(key), "tenant": tenant}
    entry |= {"admin": tenant is None, "created": datetime.now(UTC).isoformat()}
    _write(path, [*entries, entry])
    return key_id, key


def revoke_key(path: Path, key_id: str) -> bool:
    entries = read_entries(path)
    kept = [e for e in entries if e["id"] != key_id]
    if len(kept) == len(entries):
        return False
    _write(path, kept)
    return True
