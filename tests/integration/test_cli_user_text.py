"""User text is printed as written: the CLI against a real embedded store (chDB).

Rich reads `[...]` as markup; `tokenops usage --tenant "[/]"` died with a MarkupError
traceback, and a model named `[b]x[/b]` would have lost its brackets in a table.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.clickhouse_helpers import ms, window
from tests.processes import TOKENOPS
from tokenops.sinks.clickhouse import ClickHouseSettings, open_store
from tokenops.sinks.clickhouse.service import prepare_store
from tokenops.sinks.clickhouse.writer import ClickHouseWriter

TENANT, MODEL = "[/]", "[b]gpt[/b]"


def test_ids_dates_and_errors_print_as_written(chdb_dsn: str, tmp_path: Path) -> None:
    with open_store(ClickHouseSettings(url=chdb_dsn, http_port=0), tmp_path) as opened:
        prepare_store(opened, None)
        ClickHouseWriter(opened.client).write_windows([window(TENANT, MODEL, ms(2026, 11, 3, 10))])
    env = {"TOKENOPS_CLICKHOUSE_URL": chdb_dsn, "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        env_wide = {**env, "COLUMNS": "200"}
        return subprocess.run(
            [TOKENOPS, *args], env=env_wide, capture_output=True, text=True, timeout=60
        )

    span = ("--from", "2026-11-01", "--to", "2026-12-01")
    found = run("usage", "--tenant", TENANT, *span)
    assert found.returncode == 0, found.stderr
    assert f"usage of {TENANT} by model" in found.stdout and MODEL in found.stdout
    nothing = run("usage", "--tenant", "[red]nobody", *span)  # unknown: an error, as written
    assert nothing.returncode == 1 and "Traceback" not in nothing.stderr
    assert "unknown tenant '[red]nobody'" in nothing.stderr
    assert f"known tenants include {TENANT}" in nothing.stderr
    bad = run("invoice", "--tenant", TENANT, "--month", "[/]")
    assert bad.returncode == 1 and "Traceback" not in bad.stderr
    assert "error: --month='[/]': expected YYYY-MM" in bad.stderr
