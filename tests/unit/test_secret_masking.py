"""No secret in any output: one masking rule (`mask_secrets`), nested values included;
settings errors that name the variable and the rule but never a value; keyring and key
file problems that give a position, not the line; files of secrets only for their owner.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr, ValidationError

from tests.unit.test_signing import write_keyring
from tokenops.config import settings_sections
from tokenops.errors import ConfigError
from tokenops.producers.errors import ProducerError
from tokenops.producers.settings import ProducerSettings
from tokenops.producers.signing import record_signer
from tokenops.secrets import MASK, mask_secrets, masked
from tokenops.settings import KafkaSettings, TokenopsSettings, load
from tokenops.streams.keyring import load_keyring
from tokenops.streams.settings import WorkerSettings

S = "Zq8-secret-Wv3-Kd5"  # every secret below contains it, so one search finds any leak
PEM = f"-----BEGIN PRIVATE KEY-----\nMIIEv{S}QIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----"
CLIENT_CONFIG = {
    "ssl.key.pem": PEM,
    "ssl.keystore.key": PEM,
    "ssl.keystore.password": f"ks-{S}",
    "ssl.truststore.password": f"ts-{S}",
    "sasl.password": f"sasl-{S}",
    "sasl.jaas.config": f'ScramLoginModule required username="u" password="{S}";',
    "sasl.oauthbearer.config": f"clientId=metering clientSecret={S} scope=usage.write",
    "sasl.oauthbearer.client.secret": S,
    "sasl.oauthbearer.token.endpoint.url": f"https://idp:{S}@idp.internal/token",
    "acks": "all",
    "ssl.key.location": "/etc/tokenops/client.key",
}


@pytest.mark.parametrize(
    ("value", "kept"),
    [
        (CLIENT_CONFIG, ["acks", "all", "/etc/tokenops/client.key", "clientId=metering"]),
        ({"outer": {"inner": [{"password": S}, f"token={S}", {"list": [SecretStr(S)]}]}}, []),
        ([f"user=u&password={S}&db=x", f"apiToken: {S}", f'{{"clientSecret": "{S}"}}'], ["db=x"]),
        (f"clientSecret='{S} with spaces' scope=read", ["scope=read"]),
        (f"postgres://meter:{S}@db:5432/usage", ["postgres://meter:", "@db:5432/usage"]),
        ({"signing_key": S, "api_key_id": "k-17"}, ["k-17"]),
    ],
    ids=["client_config", "nested", "pairs-in-list", "quoted", "url", "names"],
)
def test_secrets_are_masked_at_any_depth(value: Any, kept: list[str]) -> None:
    for shown in (masked("x", value), masked("x", value, as_repr=True)):
        assert S not in shown and MASK in shown, shown
        for text in kept:
            assert text in shown, shown


def test_a_setting_named_as_a_secret_is_masked_whole_and_empty_ones_stay_visible() -> None:
    assert mask_secrets("anything", "sasl_password") == MASK
    assert mask_secrets(None, "sasl_password") is None  # "unset" is not a secret
    assert mask_secrets({"acks": "all"}, "client_config") == {"acks": "all"}


def _all_secrets() -> dict[type[TokenopsSettings], dict[str, Any]]:
    return {
        KafkaSettings: dict(sasl_password=S, ssl_key_password=S, client_config=CLIENT_CONFIG),
        ProducerSettings: dict(signing_key_id="k", signing_key=S, client_config=CLIENT_CONFIG),
        WorkerSettings: dict(signing_keys=json.dumps({"k": {"secret": S, "sources": ["*"]}})),
    }


def test_every_settings_model_masks_its_repr_and_hides_inputs_in_errors() -> None:
    for section in settings_sections():
        assert issubclass(section, TokenopsSettings), section  # repr masked, inputs hidden
    for model, fields in _all_secrets().items():
        settings = model(**fields)
        assert S not in repr(settings) and S not in str(settings)


@pytest.mark.parametrize(
    ("model", "fields", "variable"),
    [
        # a secret without its key id: the model-level check saw every input
        (ProducerSettings, {"signing_key": S}, "TOKENOPS_PRODUCER: Value error, signing_key"),
        # a bad horizon, checked across settings, beside the keyring JSON
        (
            WorkerSettings,
            {"dedup_horizon_s": 60, "signing_keys": json.dumps({"k": S})},
            "TOKENOPS_WORKER: Value error, dedup_horizon_s must be at least",
        ),
        (KafkaSettings, {"sasl_password": S, "client_config": {"a": 1}}, "CLIENT_CONFIG.A: "),
        (KafkaSettings, {"bootstrap_servers": S, "security_protocol": S}, "SECURITY_PROTOCOL: "),
    ],
    ids=["producer-key-without-id", "worker-horizon", "client-config", "plain-value"],
)
def test_settings_errors_name_variable_and_rule_never_a_value(
    model: type[TokenopsSettings], fields: dict[str, Any], variable: str
) -> None:
    with pytest.raises(ValidationError) as raised:
        model(**fields)
    assert S not in str(raised.value) and S not in repr(raised.value)
    with pytest.raises(ConfigError) as caught:
        load(model, **fields)
    assert any(variable in p for p in caught.value.problems), caught.value.problems
    assert S not in str(caught.value)


def test_a_map_setting_that_is_not_json_is_one_line_without_its_value(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TOKENOPS_KAFKA_CLIENT_CONFIG", f'{{"sasl.password": {S}}}')
    with pytest.raises(ConfigError) as caught:
        load(KafkaSettings)
    assert "TOKENOPS_KAFKA_CLIENT_CONFIG: not valid JSON" in str(caught.value) and S not in str(
        caught.value
    )


def _worker(tmp_path: Path, text: str | bytes, mode: int = 0o600) -> WorkerSettings:
    path = tmp_path / "keyring.yaml"
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    path.chmod(mode)
    return WorkerSettings(state_dir=tmp_path, signature_mode="enforce", signing_keyring_file=path)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (f'node-a:\n  secret: "{S}\n  sources: ["//a"]\n', "not valid YAML at line 3, column"),
        (f"node-a: {{secret: {S}, sources: [//a\n", "not valid YAML at line 2, column 1"),
        (f"node-a:\n\tsecret: {S}\n", "not valid YAML at line 2, column 1"),
        (b"node-a:\n  secret: \xff" + S.encode(), "not UTF-8 text (byte 18)"),
    ],
    ids=["unclosed-quote", "unclosed-list", "tab", "binary"],
)
def test_a_malformed_keyring_file_gives_a_position_not_the_line(
    tmp_path: Path, text: str | bytes, problem: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        load_keyring(_worker(tmp_path, text))
    assert problem in str(caught.value) and S not in str(caught.value), str(caught.value)


def test_malformed_keyring_json_gives_a_position_not_the_text(tmp_path: Path) -> None:
    settings = WorkerSettings(
        state_dir=tmp_path,
        signature_mode="enforce",
        signing_keys=f'{{"k": {{"secret": {S}}}}}',  # type: ignore[arg-type]
    )
    with pytest.raises(ConfigError) as caught:
        load_keyring(settings)
    assert "TOKENOPS_WORKER_SIGNING_KEYS: not JSON (line 1, column" in str(caught.value)
    assert S not in str(caught.value)


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o620], ids=oct)
def test_files_of_secrets_open_to_others_are_refused_with_the_fix(
    tmp_path: Path, mode: int
) -> None:
    keyring = {"node-a": {"secret": S, "sources": ["//a"]}}
    settings = _worker(tmp_path, json.dumps(keyring), mode)
    with pytest.raises(ConfigError) as caught:
        load_keyring(settings)
    assert f"(mode {mode:04o}); run: chmod 600 " in str(caught.value)
    key_file = tmp_path / "node.key"
    key_file.write_text(S)
    key_file.chmod(mode)
    with pytest.raises(ProducerError, match="chmod 600"):
        record_signer(ProducerSettings(signing_key_id="k", signing_key_file=key_file))
    write_keyring(settings.signing_keyring_file, keyring)  # type: ignore[arg-type]
    assert load_keyring(settings).key_ids == ["node-a"]  # 600: accepted
    key_file.chmod(0o400)
    assert record_signer(ProducerSettings(signing_key_id="k", signing_key_file=key_file))
