"""Reaching Kafka: cluster metadata, or one clear error saying why the cluster refused us.

librdkafka retries a refused login or TLS handshake forever and reports the reason only
through `error_cb`, while `list_topics` just times out with "Broker transport failure".
`cluster_metadata` asks in short rounds, stops at the first authentication or TLS
refusal, and raises `KafkaUnreachableError` with librdkafka's reason, which names the
mechanism or certificate problem and never the password.
"""

from __future__ import annotations

import time
from typing import Any

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient
from confluent_kafka.admin._metadata import ClusterMetadata

from tokenops.errors import TokenopsError
from tokenops.settings import KafkaSettings

# Refusals that retrying will not fix: wrong credentials, an untrusted certificate, a
# client certificate the broker requires and did not get.
_REFUSALS = {KafkaError._AUTHENTICATION, KafkaError._SSL, KafkaError.SASL_AUTHENTICATION_FAILED}
_TLS_MARKERS = ("SSL routines", "certificate", "handshake")


class KafkaUnreachableError(TokenopsError):
    """No metadata from the cluster in time; `reason` is librdkafka's last word on it."""

    def __init__(self, bootstrap: str, reason: str, *, refused: bool) -> None:
        self.bootstrap, self.reason, self.refused = bootstrap, reason, refused
        verb = "refused the connection" if refused else "did not answer"
        super().__init__(
            f"Kafka at {bootstrap} {verb}: {reason}",
            hint="check TOKENOPS_KAFKA_SECURITY_PROTOCOL, _SASL_MECHANISM, _SASL_USERNAME, "
            "_SASL_PASSWORD and the _SSL_* certificate settings"
            if refused
            else "check TOKENOPS_KAFKA_BOOTSTRAP_SERVERS and that the broker is up",
        )


def admin_client(kafka: KafkaSettings, errors: list[KafkaError] | None = None) -> AdminClient:
    """An AdminClient whose connection errors land in `errors` (served by `poll`)."""
    config: dict[str, Any] = {**kafka.librdkafka(), "log_level": 0}
    if errors is not None:
        config["error_cb"] = errors.append
    return AdminClient(config)


def cluster_metadata(
    kafka: KafkaSettings, topic: str | None = None, *, timeout_s: float = 30.0
) -> ClusterMetadata:
    """The cluster's metadata (of `topic` only, if given), or `KafkaUnreachableError`."""
    errors: list[KafkaError] = []
    admin = admin_client(kafka, errors)
    deadline = time.monotonic() + timeout_s
    last = "no answer"
    while True:
        step = max(0.1, min(2.0, deadline - time.monotonic()))
        try:
            return admin.list_topics(topic, timeout=step)
        except KafkaException as exc:
            last = exc.args[0].str()
        admin.poll(0)  # serves error_cb
        for error in errors:
            if _is_refusal(error):
                raise KafkaUnreachableError(kafka.bootstrap_servers, error.str(), refused=True)
        if errors:
            last = errors[-1].str()
        errors.clear()
        if time.monotonic() >= deadline:
            raise KafkaUnreachableError(kafka.bootstrap_servers, last, refused=False)


def _is_refusal(error: KafkaError) -> bool:
    if error.code() in _REFUSALS:
        return True
    # A broker that demands a client certificate answers a TLS alert, which librdkafka
    # reports as a transport error.
    return error.code() == KafkaError._TRANSPORT and any(m in error.str() for m in _TLS_MARKERS)
