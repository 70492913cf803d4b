"""The producer's side of signed records: one `tokenops.signature` header per record.

The header is computed when the record is handed to librdkafka (also when it is replayed
from the spool), from the events the record decodes to, so the spool format is unchanged
and a replayed record carries the same signature. A record that does not decode (only
`send_raw` can make one) goes unsigned; the worker dead-letters it either way.
"""

from __future__ import annotations

from tokenops.producers.errors import ProducerError
from tokenops.producers.settings import ProducerSettings
from tokenops.producers.spool import SpooledRecord
from tokenops.schemas.codec import CONTENT_TYPE_HEADER, decode_record
from tokenops.schemas.errors import InvalidEventError
from tokenops.schemas.signing import MIN_SECRET_BYTES, SIGNATURE_HEADER, signature_header

Headers = list[tuple[str, bytes]]


class RecordSigner:
    def __init__(self, key_id: str, secret: bytes, max_future_skew_s: float) -> None:
        self.key_id = key_id
        self._secret = secret
        self._skew_s = max_future_skew_s

    def __repr__(self) -> str:  # never the secret
        return f"RecordSigner(key_id={self.key_id!r})"

    def headers(self, record: SpooledRecord) -> Headers:
        """The signature header of `record`, or none if its value does not decode."""
        try:
            events = decode_record(
                record.value,
                [(CONTENT_TYPE_HEADER, record.content_type.encode())],
                max_future_skew_s=self._skew_s,
            )
        except InvalidEventError:
            return []
        return [(SIGNATURE_HEADER, signature_header(self.key_id, self._secret, events))]


def record_signer(settings: ProducerSettings) -> RecordSigner | None:
    """The signer `settings` ask for (None: records go unsigned)."""
    if settings.signing_key_id is None:
        return None
    if settings.signing_key is not None:
        secret = settings.signing_key.get_secret_value().encode()
    else:
        assert settings.signing_key_file is not None
        try:
            secret = settings.signing_key_file.read_text().strip().encode()
        except OSError as exc:
            raise ProducerError(
                f"cannot read TOKENOPS_PRODUCER_SIGNING_KEY_FILE={settings.signing_key_file}: "
                f"{exc.strerror}"
            ) from exc
    if len(secret) < MIN_SECRET_BYTES:
        raise ProducerError(
            f"the signing key of key id {settings.signing_key_id!r} is under "
            f"{MIN_SECRET_BYTES} bytes",
            hint="generate one with `openssl rand -base64 32`",
        )
    return RecordSigner(settings.signing_key_id, secret, settings.max_future_skew_s)
