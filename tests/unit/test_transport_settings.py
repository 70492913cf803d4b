"""Transport settings without servers: TLS contexts, Faust credentials, ClickHouse client
arguments, and the masking of secrets in output."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
from clickhouse_connect.driver import _parse_connection_params
from faust.auth import SASLCredentials, SSLCredentials
from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth
from pydantic import SecretStr

from tests.integration.secure_kafka import make_certificates
from tokenops.cli.config_cmd import _rows
from tokenops.errors import ConfigError
from tokenops.secrets import MASK, masked, redact_url
from tokenops.settings import KafkaSettings, load
from tokenops.sinks.clickhouse import ClickHouseSettings
from tokenops.sinks.clickhouse.errors import ClickHouseError
from tokenops.sinks.clickhouse.store import open_store, server_client_options
from tokenops.stack.process import free_port
from tokenops.streams.credentials import broker_credentials


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_certificates(tmp_path_factory.mktemp("certs"))


def test_plaintext_has_no_tls_and_no_faust_credentials() -> None:
    kafka = KafkaSettings()
    assert kafka.ssl_context() is None
    assert broker_credentials(kafka) is None


def test_mutual_tls_context_verifies_the_broker_and_presents_the_client(certs: Path) -> None:
    kafka = KafkaSettings(
        security_protocol="SSL",
        ssl_ca_location=certs / "ca.pem",
        ssl_certificate_location=certs / "client.pem",
        ssl_key_location=certs / "client.key",
    )
    context = kafka.ssl_context()
    assert context is not None
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert any("tokenops-test-ca" in str(c.get("subject")) for c in context.get_ca_certs())
    credentials = broker_credentials(kafka)
    assert isinstance(credentials, SSLCredentials)
    auth = credentials_to_aiokafka_auth(credentials)
    assert auth["security_protocol"] == "SSL" and isinstance(auth["ssl_context"], ssl.SSLContext)


def test_hostname_check_follows_librdkafkas_endpoint_identification(certs: Path) -> None:
    kafka = KafkaSettings(
        security_protocol="SSL",
        ssl_ca_location=certs / "ca.pem",
        client_config={"ssl.endpoint.identification.algorithm": "none"},
    )
    context = kafka.ssl_context()
    assert context is not None and not context.check_hostname


def test_sasl_ssl_scram_becomes_faust_sasl_credentials_over_tls(certs: Path) -> None:
    kafka = KafkaSettings(
        security_protocol="SASL_SSL",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_username="metering",
        sasl_password=SecretStr("pw-Lk2Jh7"),
        ssl_ca_location=certs / "ca.pem",
    )
    credentials = broker_credentials(kafka)
    assert isinstance(credentials, SASLCredentials)
    assert "pw-Lk2Jh7" not in repr(credentials)
    auth = credentials_to_aiokafka_auth(credentials)
    assert auth["security_protocol"] == "SASL_SSL"
    assert auth["sasl_mechanism"] == "SCRAM-SHA-512"
    assert (auth["sasl_plain_username"], auth["sasl_plain_password"]) == ("metering", "pw-Lk2Jh7")
    assert isinstance(auth["ssl_context"], ssl.SSLContext)
    plain = KafkaSettings(**{**kafka.model_dump(), "security_protocol": "SASL_PLAINTEXT"})
    plain_auth = credentials_to_aiokafka_auth(broker_credentials(plain))
    assert plain_auth["security_protocol"] == "SASL_PLAINTEXT" and plain_auth["ssl_context"] is None


def test_sasl_without_credentials_names_the_missing_settings() -> None:
    with pytest.raises(ConfigError) as caught:
        broker_credentials(KafkaSettings(security_protocol="SASL_SSL"))
    text = str(caught.value)
    for name in ("SASL_MECHANISM", "SASL_USERNAME", "SASL_PASSWORD"):
        assert f"TOKENOPS_KAFKA_{name}" in text


def test_unreadable_certificates_name_the_setting(tmp_path: Path) -> None:
    kafka = KafkaSettings(
        security_protocol="SSL",
        ssl_ca_location=tmp_path / "missing-ca.pem",
        ssl_certificate_location=tmp_path / "missing.pem",
        ssl_key_password=SecretStr("key-pw-Rt5"),
    )
    with pytest.raises(ConfigError) as caught:
        kafka.ssl_context()
    text = str(caught.value)
    assert "TOKENOPS_KAFKA_SSL_CA_LOCATION" in text
    assert "TOKENOPS_KAFKA_SSL_CERTIFICATE_LOCATION" in text
    assert "key-pw-Rt5" not in text


def test_clickhouse_client_gets_user_password_and_tls(tmp_path: Path) -> None:
    settings = ClickHouseSettings(
        url="https://ch.example:8443",
        username="billing",
        password=SecretStr("ch-pw-Ab3"),
        verify_tls=True,
        ca_cert=tmp_path / "ca.pem",
        client_cert=tmp_path / "client.pem",
        client_key=tmp_path / "client.key",
    )
    assert server_client_options(settings) == {
        "dsn": "https://ch.example:8443",
        "username": "billing",
        "password": "ch-pw-Ab3",
        "verify": True,
        "connect_timeout": 10.0,
        "secure": True,
        "ca_cert": str(tmp_path / "ca.pem"),
        "client_cert": str(tmp_path / "client.pem"),
        "client_cert_key": str(tmp_path / "client.key"),
    }
    insecure = server_client_options(ClickHouseSettings(url="http://ch:8123", verify_tls=False))
    assert insecure["verify"] is False and insecure["password"] == ""
    assert insecure["secure"] is False
    assert "ca_cert" not in insecure and "client_cert" not in insecure


def test_https_on_any_port_stays_https() -> None:
    """clickhouse-connect reads TLS from a DSN's scheme only on ports 443/8443."""
    options = server_client_options(ClickHouseSettings(url="https://ch.example:9440"))
    host, _, _, port, _, interface = _parse_connection_params(
        None, None, "", None, None, None, options["secure"], options["dsn"], {}
    )
    assert (host, port, interface) == ("ch.example", 9440, "https")


def test_clickhouse_connection_errors_never_show_the_password(tmp_path: Path) -> None:
    port = free_port()  # nothing listens there
    settings = ClickHouseSettings(
        url=f"https://billing:url-pw-Qz9@127.0.0.1:{port}",
        password=SecretStr("ch-pw-Wx4"),
        connect_timeout_s=2,
    )
    with pytest.raises(ClickHouseError) as caught:
        open_store(settings, tmp_path)
    text = str(caught.value)
    assert "cannot connect to ClickHouse" in text
    assert "url-pw-Qz9" not in text and "ch-pw-Wx4" not in text


def test_masking() -> None:
    assert redact_url("see https://u:p4ss@h:1/x and http://h:2") == (
        f"see https://u:{MASK}@h:1/x and http://h:2"
    )
    assert masked("sasl_password", "x") == MASK
    assert masked("client_config", {"sasl.password": "x", "acks": "all"}) == (
        f"{{'sasl.password': '{MASK}', 'acks': 'all'}}"
    )
    assert masked("url", "https://u:p@h") == f"https://u:{MASK}@h"
    assert masked("bootstrap_servers", "h:9092", as_repr=True) == "'h:9092'"


def test_config_show_rows_mask_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOKENOPS_KAFKA_SASL_PASSWORD", "pw-Hh8")
    monkeypatch.setenv(
        "TOKENOPS_KAFKA_CLIENT_CONFIG", '{"sasl.oauthbearer.client.secret": "cs-Yy2"}'
    )
    rows = {name: value for name, value, _ in _rows(load(KafkaSettings))}
    assert rows["TOKENOPS_KAFKA_SASL_PASSWORD"] == MASK
    assert "cs-Yy2" not in rows["TOKENOPS_KAFKA_CLIENT_CONFIG"]


def test_settings_errors_never_echo_a_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOKENOPS_KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("TOKENOPS_KAFKA_SASL_MECHANISM", "SCRAM-SHA-1")  # invalid
    monkeypatch.setenv("TOKENOPS_KAFKA_SASL_PASSWORD", "pw-Nn3")
    with pytest.raises(ConfigError) as caught:
        load(KafkaSettings)
    assert "TOKENOPS_KAFKA_SASL_MECHANISM" in str(caught.value)
    assert "pw-Nn3" not in str(caught.value)
