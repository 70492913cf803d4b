"""A secured Kafka broker for tests: certificates made with `openssl`, SCRAM users made
by `StorageTool format --add-scram`, the same jars and `KafkaBroker` as the local stack.

Listeners: SASL_SSL (SCRAM-SHA-512 over TLS), SSL with `ssl.client.auth=required`
(mutual TLS), and a loopback PLAINTEXT one the broker uses for itself and the readiness
check. The certificates are a throwaway CA, a broker certificate for 127.0.0.1 and
localhost, and a client certificate signed by the same CA.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from pydantic import SecretStr

from tokenops.settings import KafkaSettings, StackSettings
from tokenops.stack.kafka import KafkaBroker
from tokenops.stack.process import free_port

SCRAM_USER = "metering"
SCRAM_PASSWORD = "scram-pw-Q7x9Zk2mV4"  # recognizable, so tests can look for leaks

_LEAF_EXTENSIONS = """\
subjectAltName=IP:127.0.0.1,DNS:localhost
basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth,clientAuth
"""


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_certificates(folder: Path) -> Path:
    """ca.pem, broker-keystore.pem (key + chain, PEM keystore), client.pem + client.key."""
    folder.mkdir(parents=True, exist_ok=True)
    _openssl(
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        "-keyout", "ca.key", "-out", "ca.pem", "-subj", "/CN=tokenops-test-ca",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        cwd=folder,
    )  # fmt: skip
    (folder / "leaf.ext").write_text(_LEAF_EXTENSIONS)
    for name in ("broker", "client"):
        _openssl(
            "req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key",
            "-out", f"{name}.csr", "-subj", f"/CN={name}", cwd=folder,
        )  # fmt: skip
        _openssl(
            "x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-days", "2", "-out", f"{name}.pem", "-extfile", "leaf.ext",
            cwd=folder,
        )  # fmt: skip
    keystore = b"".join((folder / n).read_bytes() for n in ("broker.key", "broker.pem", "ca.pem"))
    (folder / "broker-keystore.pem").write_bytes(keystore)
    return folder


@dataclass
class SecureBroker:
    broker: KafkaBroker
    certs: Path
    sasl_port: int
    mtls_port: int

    def sasl(self, password: str = SCRAM_PASSWORD, user: str = SCRAM_USER) -> KafkaSettings:
        return KafkaSettings(
            bootstrap_servers=f"127.0.0.1:{self.sasl_port}",
            security_protocol="SASL_SSL",
            sasl_mechanism="SCRAM-SHA-512",
            sasl_username=user,
            sasl_password=SecretStr(password),
            ssl_ca_location=self.certs / "ca.pem",
        )

    def mtls(self, *, client_cert: bool = True) -> KafkaSettings:
        cert = {
            "ssl_certificate_location": self.certs / "client.pem",
            "ssl_key_location": self.certs / "client.key",
        }
        return KafkaSettings(
            bootstrap_servers=f"127.0.0.1:{self.mtls_port}",
            security_protocol="SSL",
            ssl_ca_location=self.certs / "ca.pem",
            **(cert if client_cert else {}),
        )


def start_secure_broker(state_dir: Path) -> SecureBroker:
    certs = make_certificates(state_dir / "certs")
    plain, controller, sasl, mtls = free_port(), free_port(), free_port(), free_port()
    listeners = f"PLAINTEXT://127.0.0.1:{plain},SASL_SSL://127.0.0.1:{sasl},SSL://127.0.0.1:{mtls}"
    properties = {
        "listeners": f"{listeners},CONTROLLER://127.0.0.1:{controller}",
        "advertised.listeners": listeners,
        "listener.security.protocol.map": (
            "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SASL_SSL:SASL_SSL,SSL:SSL"
        ),
        "sasl.enabled.mechanisms": "SCRAM-SHA-512",
        "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config": (
            "org.apache.kafka.common.security.scram.ScramLoginModule required;"
        ),
        "ssl.keystore.type": "PEM",
        "ssl.keystore.location": str(certs / "broker-keystore.pem"),
        "ssl.truststore.type": "PEM",
        "ssl.truststore.location": str(certs / "ca.pem"),
        "listener.name.ssl.ssl.client.auth": "required",
    }
    settings = StackSettings(
        state_dir=state_dir / "stack",
        kafka_port=plain,
        kafka_controller_port=controller,
        kafka_heap_mb=512,
    )
    user = f"SCRAM-SHA-512=[name={SCRAM_USER},password={SCRAM_PASSWORD}]"
    broker = KafkaBroker(settings, extra_properties=properties, format_args=("--add-scram", user))
    broker.start()
    return SecureBroker(broker, certs, sasl, mtls)


def kafka_env(kafka: KafkaSettings) -> dict[str, str]:
    """The TOKENOPS_KAFKA_* environment that `load(KafkaSettings)` reads back as `kafka`."""
    env = {}
    for name, value in kafka:
        if value is None or name == "client_config":
            continue
        text = value.get_secret_value() if isinstance(value, SecretStr) else str(value)
        env[f"TOKENOPS_KAFKA_{name.upper()}"] = text
    return env


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without any TOKENOPS_* variable, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOKENOPS_")}
    env.update(extra)
    return env
