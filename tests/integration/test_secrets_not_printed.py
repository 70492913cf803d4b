"""No secret in any output of a real `tokenops` process, nested ones included.

Each case runs the command an operator runs, configured only through TOKENOPS_*
variables and files, and searches its stdout and stderr for the secret's bytes: `config
show` with secrets inside `TOKENOPS_KAFKA_CLIENT_CONFIG`; settings errors (a producer
key without its key id, a worker with a bad dedup horizon beside its keyring JSON); a
malformed, a bare-secret and a group-readable keyring; a producer's group-readable key
file. Failing cases must also say what to fix.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from tests.integration.secure_kafka import clean_env, kafka_env
from tests.processes import run_tokenops
from tokenops.settings import KafkaSettings

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

S = "Hx4-secret-Lp7-Qe2"  # in every secret below: one search finds any leak
PEM = f"-----BEGIN PRIVATE KEY-----\nMIIEv{S}QIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----"
CLIENT_CONFIG = {
    "ssl.key.pem": PEM,
    "ssl.keystore.password": f"ks-{S}",
    "ssl.truststore.password": f"ts-{S}",
    "sasl.password": f"sasl-{S}",
    "sasl.oauthbearer.config": f"clientId=metering clientSecret={S} scope=usage.write",
    "acks": "all",
}
KEYRING = {"node-a": {"secret": f"kr-{S}", "sources": ["//node-a"]}}


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    # a wide terminal: rich must not wrap a value, or a leak could hide across lines
    env = clean_env(
        COLUMNS="400",
        TOKENOPS_STACK_STATE_DIR=str(tmp_path / "stack"),
        TOKENOPS_WORKER_STATE_DIR=str(tmp_path / "worker"),
        TOKENOPS_KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:9",  # the worker cases stop before Kafka
    )
    return {**env, **extra}


def _keyring_file(tmp_path: Path, text: str, mode: int = 0o600) -> str:
    path = tmp_path / "keyring.yaml"
    path.write_text(text)
    path.chmod(mode)
    return str(path)


def _run(args: list[str], env: dict[str, str], code: int, *says: str) -> str:
    got, output = run_tokenops(args, env)
    assert got == code, output
    assert S not in output, f"`tokenops {' '.join(args)}` printed a secret:\n{output}"
    assert "Traceback" not in output, output
    for text in says:
        assert text in output, output
    return output


def test_config_show_masks_nested_secrets(tmp_path: Path) -> None:
    env = _env(
        tmp_path,
        TOKENOPS_KAFKA_CLIENT_CONFIG=json.dumps(CLIENT_CONFIG),
        TOKENOPS_KAFKA_SASL_PASSWORD=f"pw-{S}",
        TOKENOPS_PRODUCER_SIGNING_KEY_ID="node-a",
        TOKENOPS_PRODUCER_SIGNING_KEY=f"pk-{S}",
        TOKENOPS_PRODUCER_CLIENT_CONFIG=json.dumps(CLIENT_CONFIG),
        TOKENOPS_WORKER_SIGNING_KEYS=json.dumps(KEYRING),
        TOKENOPS_CLICKHOUSE_URL=f"https://meter:{S}@clickhouse.internal:8443",
    )
    shown = _run(["config", "show"], env, 0, "**********", "clientId=metering", "'acks': 'all'")
    assert "clientSecret=**********" in shown and "'ssl.key.pem': '**********'" in shown


@pytest.mark.parametrize(
    ("args", "extra", "says"),
    [
        (
            ["config", "show"],
            {"TOKENOPS_PRODUCER_SIGNING_KEY": f"pk-{S}"},
            ["TOKENOPS_PRODUCER: Value error, signing_key or signing_key_file needs"],
        ),
        (
            ["worker"],
            {"TOKENOPS_WORKER_DEDUP_HORIZON_S": "60", "TOKENOPS_WORKER_SIGNING_KEYS": "{}"},
            ["TOKENOPS_WORKER: Value error, dedup_horizon_s must be at least"],
        ),
    ],
    ids=["producer-key-without-id", "worker-bad-horizon"],
)
def test_settings_errors_name_the_variable_not_the_value(
    tmp_path: Path, args: list[str], extra: dict[str, str], says: list[str]
) -> None:
    if "TOKENOPS_WORKER_SIGNING_KEYS" in extra:
        extra["TOKENOPS_WORKER_SIGNING_KEYS"] = json.dumps(KEYRING)
    _run(args, _env(tmp_path, **extra), 1, *says)


@pytest.mark.parametrize(
    ("text", "mode", "says"),
    [
        (f'node-a:\n  secret: "kr-{S}\n  sources: [//node-a]\n', 0o600, "not valid YAML at line"),
        (f"node-a: kr-{S}\n", 0o600, "needs a scope, not a bare secret; write each key as"),
        (json.dumps(KEYRING), 0o640, "open to group or others (mode 0640); run: chmod 600"),
    ],
    ids=["malformed-yaml", "bare-secret", "group-readable"],
)
def test_the_worker_refuses_a_bad_keyring_without_echoing_it(
    tmp_path: Path, text: str, mode: int, says: str
) -> None:
    env = _env(
        tmp_path,
        TOKENOPS_WORKER_SIGNATURE_MODE="enforce",
        TOKENOPS_WORKER_SIGNING_KEYRING_FILE=_keyring_file(tmp_path, text, mode),
    )
    _run(["worker"], env, 1, "TOKENOPS_WORKER_SIGNING_KEYRING_FILE=", says)


@pytest.mark.parametrize("how", ["key-without-id", "group-readable-key-file"])
def test_simulate_refuses_a_bad_producer_key_without_echoing_it(
    kafka_settings: KafkaSettings, tmp_path: Path, how: str
) -> None:
    key_file = tmp_path / "node.key"
    key_file.write_text(f"pk-{S}\n")
    key_file.chmod(0o644)
    signing = (
        {"TOKENOPS_PRODUCER_SIGNING_KEY": f"pk-{S}"}
        if how == "key-without-id"
        else {
            "TOKENOPS_PRODUCER_SIGNING_KEY_ID": "node-a",
            "TOKENOPS_PRODUCER_SIGNING_KEY_FILE": str(key_file),
        }
    )
    env = _env(
        tmp_path,
        **kafka_env(kafka_settings),
        TOKENOPS_TOPIC_USAGE=f"secrets.usage.{uuid.uuid4().hex[:8]}",
        TOKENOPS_PRODUCER_SPOOL_DIR=str(tmp_path / "spool"),
        **signing,
    )
    says = "TOKENOPS_PRODUCER: " if how == "key-without-id" else "chmod 600"
    topic = env["TOKENOPS_TOPIC_USAGE"]
    args = ["simulate", "--duration", "1", "--ledger", str(tmp_path / "l.json"), "--topic", topic]
    _run(args, env, 1, says)
