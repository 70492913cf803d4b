"""The worker's check of signed records: the keyring, and what each mode lets through.

Runs inside the decoder (`WorkerDecoder` wraps `decode_fetch` with it), so a rejected
record takes the worker's normal dead-letter path: `InvalidEventError(field="signature")`
becomes the `tokenops.dlq.reason` header (`unsigned: ...`, `forged: ...`,
`unknown_key: ...`, `malformed: ...`), a genuine signature over events outside its
key's scope `tokenops.dlq.field: signature_scope` (`out_of_scope: ...`), and the worker
keeps running. The keyring comes from `keyring.py`.
"""

from __future__ import annotations

import logging
from typing import Any

from tokenops.schemas.columns import EventColumns
from tokenops.schemas.decode import Fetch, decode_fetch
from tokenops.schemas.errors import InvalidEventError
from tokenops.schemas.signing import SignatureCheck
from tokenops.streams.keyring import load_keyring
from tokenops.streams.partition import Decoder
from tokenops.streams.settings import WorkerSettings

logger = logging.getLogger(__name__)


def signature_check(settings: WorkerSettings) -> SignatureCheck | None:
    """The check `settings.signature_mode` asks for; None when signatures are off."""
    if settings.signature_mode == "off":
        return None
    keyring = load_keyring(settings)
    logger.info("verifying signatures mode=%s key_ids=%s", settings.signature_mode, keyring.key_ids)
    return SignatureCheck(keyring, enforce=settings.signature_mode == "enforce")


class WorkerDecoder:
    """The worker's decoder: a record's columns (`decode_columns`), after `check`; `many`
    decodes a whole fetch at once (`decode_fetch`), what `PartitionState` calls.

    Signatures are verified on the columns (`schemas/signing.py`), record by record: with
    a check, the fetch's chunk of single events is split into its records first.
    """

    def __init__(self, check: SignatureCheck | None) -> None:
        self.check = check

    def __call__(self, value: bytes, headers: Any, now_ms: int) -> EventColumns:
        results, mixed, _ = self.many([(value, headers, now_ms)])
        result = results[0] if mixed is None else mixed.record(0)
        if isinstance(result, InvalidEventError):
            raise result
        assert result is not None  # a record not in `mixed` has its columns or its error
        return result

    def many(self, items: list[tuple[bytes, Any, int]]) -> Fetch:
        pairs = [_headers(headers) for _, headers, _ in items]
        fetch = decode_fetch(
            [(value, h, now_ms) for (value, _, now_ms), h in zip(items, pairs, strict=True)]
        )
        check = self.check
        if check is None:
            return fetch
        results, mixed, rows = fetch
        if mixed is not None:
            for i, part in zip(rows, mixed.records(), strict=True):
                results[i] = part
        for i, columns in enumerate(results):
            if columns.__class__ is EventColumns:
                try:  # InvalidEventError: dead-lettered with the reason
                    check(columns, pairs[i])
                except InvalidEventError as exc:
                    results[i] = exc
        return Fetch(results, None, [])


def worker_decoder(check: SignatureCheck | None) -> Decoder:
    """The worker's decoder (`WorkerDecoder`)."""
    return WorkerDecoder(check)


def _headers(headers: Any) -> list[tuple[str, bytes]] | None:
    """The client's headers (a list of pairs, or a dict) as (str, bytes) pairs."""
    if not headers:
        return None
    items = headers.items() if isinstance(headers, dict) else headers
    return [(str(k), bytes(v or b"")) for k, v in items]
