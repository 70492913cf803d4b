"""`tokenops quota set --file F --check`: validation without Kafka, one line per bad entry."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from tokenops.cli import app
from tokenops.paths import deploy_dir
from tokenops.quotas.errors import QuotaFileError


def test_the_checked_in_file_passes_the_check() -> None:
    file = deploy_dir() / "quotas.yaml"
    done = CliRunner().invoke(app, ["quota", "set", "--file", str(file), "--check"])
    assert done.exit_code == 0, done.output
    assert "valid quotas" in done.output


def test_a_bad_file_names_each_bad_entry(tmp_path: Path) -> None:
    file = tmp_path / "quotas.yaml"
    file.write_text(
        "quotas:\n"
        "  - {tenant_id: acme, name: a, period: day, limit: -1}\n"
        "  - {tenant_id: acme, name: b, period: day, limit: 5, thresholds_pct: [0]}\n"
    )
    done = CliRunner().invoke(app, ["quota", "set", "--file", str(file), "--check"])
    assert isinstance(done.exception, QuotaFileError)
    message = str(done.exception)
    assert "quotas[0] (acme/a): limit:" in message
    assert "quotas[1] (acme/b): thresholds_pct:" in message


def test_set_without_a_limit_is_one_clear_error() -> None:
    done = CliRunner().invoke(app, ["quota", "set", "acme", "daily"])
    assert "needs TENANT NAME and --limit" in str(done.exception)
