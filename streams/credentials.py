"""The Faust worker's broker credentials, from the same `KafkaSettings` as every other client.

Faust hands `broker_credentials` to aiokafka for its consumer and producer
(`faust.transport.drivers.aiokafka.credentials_to_aiokafka_auth`): `SASLCredentials`
becomes SASL_PLAINTEXT, or SASL_SSL when it carries an `ssl_context`; `SSLCredentials`
becomes SSL, with a client certificate in the context for mutual TLS.
"""

from __future__ import annotations

from faust.auth import SASLCredentials, SSLCredentials
from faust.types.auth import CredentialsT

from tokenops.errors import ConfigError
from tokenops.settings import KafkaSettings


def broker_credentials(kafka: KafkaSettings) -> CredentialsT | None:
    """Faust's `broker_credentials` for `kafka`; None for PLAINTEXT."""
    protocol = kafka.security_protocol
    if protocol == "PLAINTEXT":
        return None
    context = kafka.ssl_context()
    if protocol == "SSL":
        assert context is not None
        return SSLCredentials(context)
    missing = [
        f"TOKENOPS_KAFKA_{name.upper()}: required with TOKENOPS_KAFKA_SECURITY_PROTOCOL={protocol}"
        for name in ("sasl_mechanism", "sasl_username", "sasl_password")
        if getattr(kafka, name) is None
    ]
    if missing:
        raise ConfigError(missing)
    assert kafka.sasl_password is not None
    return SASLCredentials(
        username=kafka.sasl_username,
        password=kafka.sasl_password.get_secret_value(),
        ssl_context=context,  # None: SASL_PLAINTEXT
        mechanism=kafka.sasl_mechanism,
    )
