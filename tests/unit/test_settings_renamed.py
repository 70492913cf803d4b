"""One setting per concern: renamed variables still work for a while, and say so."""

from __future__ import annotations

import inspect
import logging

import pytest

from tokenops.config import unknown_variables
from tokenops.producers import ProducerSettings, UsageProducer
from tokenops.settings import LogSettings, load


def test_one_progress_interval_and_the_old_worker_name_warns(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("TOKENOPS_WORKER_LOG_EVERY_S", "7")
    with caplog.at_level(logging.WARNING, logger="tokenops.settings"):
        assert load(LogSettings).progress_every_s == 7
    assert "TOKENOPS_WORKER_LOG_EVERY_S is deprecated" in caplog.text
    assert "TOKENOPS_LOG_PROGRESS_EVERY_S" in caplog.text
    monkeypatch.setenv("TOKENOPS_LOG_PROGRESS_EVERY_S", "3")  # the current name wins
    assert load(LogSettings).progress_every_s == 3
    assert unknown_variables({"TOKENOPS_WORKER_LOG_EVERY_S": "7"}) == []


def test_one_producer_linger_and_the_old_name_warns(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    assert load(ProducerSettings).linger_ms == 50
    monkeypatch.setenv("TOKENOPS_PRODUCER_BATCH_LINGER_MS", "5")
    with caplog.at_level(logging.WARNING):
        settings = load(ProducerSettings)
    assert settings.linger_ms == 5 and "TOKENOPS_PRODUCER_LINGER_MS" in caplog.text
    assert settings.librdkafka()["linger.ms"] == 20  # librdkafka's own: client_config
    assert ProducerSettings(client_config={"linger.ms": "0"}).librdkafka()["linger.ms"] == "0"
    assert not hasattr(settings, "batch_linger_ms")


def test_the_sdk_takes_its_settings_from_its_caller_or_from_env() -> None:
    """It read `TOKENOPS_PRODUCER_*` itself when given none; now that is `from_env()`."""
    parameter = inspect.signature(UsageProducer).parameters["settings"]
    assert parameter.default is inspect.Parameter.empty
    assert callable(UsageProducer.from_env)
