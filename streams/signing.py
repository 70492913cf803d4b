"""The worker's check of signed records: the keyring, and what each mode lets through.

Runs inside the decoder (`worker_decoder` wraps `decode_columns` with it), so a rejected
record takes the worker's normal dead-letter path: `InvalidEventError(field="signature")`
becomes the `tokenops.dlq.reason` header (`unsigned: ...`, `forged: ...`,
`unknown_key: ...`, `malformed: ...`), and the worker keeps running.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import orjson
import yaml

from tokenops.errors import ConfigError
from tokenops.schemas.columns import EventColumns
from tokenops.schemas.decode import decode_columns
from tokenops.schemas.signing import Keyring, SignatureCheck
from tokenops.streams.partition import Decoder
from tokenops.streams.settings import WorkerSettings

logger = logging.getLogger(__name__)


def load_keyring(settings: WorkerSettings) -> Keyring:
    """The keyring file's keys joined with `signing_keys`; every problem in one ConfigError
    (naming the setting and key id, never a secret)."""
    keys: dict[str, bytes] = {}
    problems: list[str] = []
    sources: list[tuple[str, object]] = []
    path = settings.signing_keyring_file
    if path is not None:
        try:
            sources.append((f"TOKENOPS_WORKER_SIGNING_KEYRING_FILE={path}", _read(path)))
        except (OSError, yaml.YAMLError) as exc:
            problems.append(f"TOKENOPS_WORKER_SIGNING_KEYRING_FILE={path}: cannot read: {exc}")
    if settings.signing_keys is not None:
        try:
            parsed = orjson.loads(settings.signing_keys.get_secret_value())
            sources.append(("TOKENOPS_WORKER_SIGNING_KEYS", parsed))
        except orjson.JSONDecodeError:
            problems.append("TOKENOPS_WORKER_SIGNING_KEYS: not JSON")
    for name, data in sources:
        if not isinstance(data, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in data.items()
        ):
            problems.append(f"{name}: must map key ids to secret strings")
            continue
        keys.update({k: v.encode() for k, v in data.items()})
    if not problems:
        try:
            return Keyring(keys)
        except ValueError as exc:
            problems.append(f"signing keyring: {exc}")
    raise ConfigError(problems)


def _read(path: Path) -> object:
    return yaml.safe_load(path.read_text()) or {}


def signature_check(settings: WorkerSettings) -> SignatureCheck | None:
    """The check `settings.signature_mode` asks for; None when signatures are off."""
    if settings.signature_mode == "off":
        return None
    keyring = load_keyring(settings)
    logger.info("verifying signatures mode=%s key_ids=%s", settings.signature_mode, keyring.key_ids)
    return SignatureCheck(keyring, enforce=settings.signature_mode == "enforce")


def worker_decoder(check: SignatureCheck | None) -> Decoder:
    """The worker's decoder: a record's columns (`decode_columns`), after `check`.

    A signature covers the events as the producer built them, so checking one needs the
    `UsageEvent`s: they are built only when signatures are on. Without a check no
    per-event object is made at all.
    """

    def decode(value: bytes, headers: Any, now_ms: int) -> EventColumns:
        pairs = _headers(headers)
        columns = decode_columns(value, pairs, now_ms=now_ms)
        if check is not None:
            check(columns.events(), pairs)  # InvalidEventError: dead-lettered with the reason
        return columns

    return decode


def _headers(headers: Any) -> list[tuple[str, bytes]] | None:
    """The client's headers (a list of pairs, or a dict) as (str, bytes) pairs."""
    if not headers:
        return None
    items = headers.items() if isinstance(headers, dict) else headers
    return [(str(k), bytes(v or b"")) for k, v in items]
