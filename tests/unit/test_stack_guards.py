"""The stack's refusals: foreign data is never deleted unless forced; old Java is named."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tokenops.settings import StackSettings
from tokenops.stack.errors import ForeignStateError, MissingToolError
from tokenops.stack.kafka import KafkaBroker
from tokenops.stack.tools import java_major_version


def _broker(tmp_path: Path) -> KafkaBroker:
    return KafkaBroker(StackSettings(state_dir=tmp_path, cache_dir=tmp_path / "cache"))


def test_a_data_directory_of_another_cluster_is_refused(tmp_path: Path) -> None:
    broker = _broker(tmp_path)
    broker.data_dir.mkdir(parents=True)
    meta = broker.data_dir / "meta.properties"
    meta.write_text("cluster.id=someone-elses\nnode.id=1\nversion=1\n")
    with pytest.raises(ForeignStateError) as caught:
        broker.ensure_formatted(broker.write_config())
    assert "someone-elses" in caught.value.message
    assert "--force" in (caught.value.hint or "")
    assert meta.exists(), "foreign data must survive a refusal"


def test_a_non_empty_unformatted_data_directory_is_refused(tmp_path: Path) -> None:
    broker = _broker(tmp_path)
    broker.data_dir.mkdir(parents=True)
    (broker.data_dir / "precious.log").write_text("x")
    with pytest.raises(ForeignStateError):
        broker.ensure_formatted(broker.write_config())
    assert (broker.data_dir / "precious.log").exists()


def test_java_that_is_too_old_is_named(tmp_path: Path) -> None:
    fake = tmp_path / "java"
    fake.write_text("#!/bin/sh\necho 'openjdk version \"11.0.2\" 2019-01-15' >&2\n")
    fake.chmod(0o755)
    with pytest.raises(MissingToolError) as caught:
        java_major_version(str(fake))
    assert "java 11 is too old" in caught.value.message
    assert "17" in (caught.value.hint or "")


def test_missing_java_is_named() -> None:
    with pytest.raises(MissingToolError) as caught:
        java_major_version("/nonexistent/java")
    assert "java was not found" in caught.value.message


def test_real_java_is_new_enough() -> None:
    assert java_major_version() >= 17
    assert subprocess.run(["java", "-version"], capture_output=True, check=False).returncode == 0
