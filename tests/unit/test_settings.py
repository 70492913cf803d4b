from __future__ import annotations

import pytest
from pydantic import SecretStr

from tokenops.errors import ConfigError
from tokenops.settings import KafkaSettings, StackSettings, load


def test_every_invalid_setting_is_reported_with_its_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TOKENOPS_STACK_KAFKA_PORT", "70000")
    monkeypatch.setenv("TOKENOPS_STACK_START_TIMEOUT_S", "soon")
    with pytest.raises(ConfigError) as caught:
        load(StackSettings)
    problems = caught.value.problems
    assert len(problems) == 2
    assert any(p.startswith("TOKENOPS_STACK_KAFKA_PORT: ") for p in problems)
    assert any(p.startswith("TOKENOPS_STACK_START_TIMEOUT_S: ") for p in problems)
    # the variable and the rule, never the value (which may be a secret)
    assert not any("70000" in p or "soon" in p for p in problems)


def test_librdkafka_config_carries_secrets_but_their_repr_does_not() -> None:
    settings = KafkaSettings(
        security_protocol="SASL_SSL",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_username="meter",
        sasl_password=SecretStr("hunter2"),
        client_config={"socket.keepalive.enable": "true"},
    )
    config = settings.librdkafka()
    assert config["sasl.password"] == "hunter2"
    assert config["socket.keepalive.enable"] == "true"
    assert "hunter2" not in repr(settings)
