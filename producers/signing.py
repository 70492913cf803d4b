"""The producer's side of signed records: one `tokenops.signature` header per record.

The header is computed from the record's columns before they are encoded (`sign`); a
record replayed from the spool is signed again from the events its value decodes to, so
the spool format is unchanged and a replayed record carries the same signature. A record
that does not decode (only `send_raw` can make one) goes unsigned; the worker dead-letters
it either way.
"""

from __future__ import annotations

from pathlib import Path

from tokenops.producers.errors import ProducerError
from tokenops.producers.settings import ProducerSettings
from tokenops.producers.spool import SpooledRecord
from tokenops.schemas.columns import EventColumns
from tokenops.schemas.decode import decode_columns
from tokenops.schemas.errors import InvalidEventError
from tokenops.schemas.signing import MIN_SECRET_BYTES, SIGNATURE_HEADER, signature_header
from tokenops.schemas.wire import CONTENT_TYPE_HEADER
from tokenops.secrets import shared_file_problem

Headers = list[tuple[str, bytes]]


class RecordSigner:
    def __init__(self, key_id: str, secret: bytes, max_future_skew_s: float) -> None:
        self.key_id = key_id
        self._secret = secret
        self._skew_s = max_future_skew_s

    def __repr__(self) -> str:  # never the secret
        return f"RecordSigner(key_id={self.key_id!r})"

    def sign(self, columns: EventColumns) -> bytes:
        """The signature header value of a record of these columns, computed before they
        are encoded: the producer never decodes its own records to sign them."""
        return signature_header(self.key_id, self._secret, columns)

    def headers(self, record: SpooledRecord) -> Headers:
        """The signature header of `record`: the one `sign` made, or for a record
        replayed from the spool (or sent raw) one computed from its value; none if its
        value does not decode."""
        if record.signature is not None:
            return [(SIGNATURE_HEADER, record.signature)]
        try:
            columns = decode_columns(
                record.value,
                [(CONTENT_TYPE_HEADER, record.content_type.encode())],
                max_future_skew_s=self._skew_s,
            )
        except InvalidEventError:
            return []
        return [(SIGNATURE_HEADER, self.sign(columns))]


def record_signer(settings: ProducerSettings) -> RecordSigner | None:
    """The signer `settings` ask for (None: records go unsigned)."""
    if settings.signing_key_id is None:
        return None
    if settings.signing_key is not None:
        secret = settings.signing_key.get_secret_value().encode()
    else:
        assert settings.signing_key_file is not None
        secret = _read_key_file(settings.signing_key_file)
    if len(secret) < MIN_SECRET_BYTES:
        raise ProducerError(
            f"the signing key of key id {settings.signing_key_id!r} is under "
            f"{MIN_SECRET_BYTES} bytes",
            hint="generate one with `openssl rand -base64 32`",
        )
    return RecordSigner(settings.signing_key_id, secret, settings.max_future_skew_s)


def _read_key_file(path: Path) -> bytes:
    where = f"TOKENOPS_PRODUCER_SIGNING_KEY_FILE={path}"
    try:
        refused = shared_file_problem(path)
        if refused is not None:
            raise ProducerError(f"{where}: {refused}")
        return path.read_bytes().strip()
    except OSError as exc:
        raise ProducerError(f"cannot read {where}: {exc.strerror}") from exc
