"""Invoices people look at: HTML rendered by headless Chromium, CSV rows, Parquet.

Chromium comes from deploy/local/install-system-deps.sh (Debian package `chromium`).
A screenshot is "not blank" when it differs from a blank page's of the same size, and
"shows the totals" when it differs from the same invoice with the totals row left out;
the rendered DOM holds the total as text.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import chdb
import orjson

from tests.clickhouse_helpers import ms, window
from tests.processes import TOKENOPS
from tokenops.sinks.clickhouse import ClickHouseSettings, open_store
from tokenops.sinks.clickhouse.service import prepare_store
from tokenops.sinks.clickhouse.writer import ClickHouseWriter

TENANT = "<b>acme</b>"  # as a producer sent it: must be escaped, not markup


def _chromium(*args: str) -> subprocess.CompletedProcess[bytes]:
    binary = shutil.which("chromium")
    assert binary, "chromium missing: run deploy/local/install-system-deps.sh"
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars"]
    return subprocess.run([binary, *flags, *args], capture_output=True, timeout=90)


def _screenshot(page: Path, out: Path) -> bytes:
    done = _chromium(f"--screenshot={out}", "--window-size=1000,900", page.as_uri())
    assert out.exists(), done.stderr.decode()[-2000:]
    return out.read_bytes()


def test_an_invoice_as_html_csv_and_parquet(chdb_dsn: str, tmp_path: Path) -> None:
    with open_store(ClickHouseSettings(url=chdb_dsn, http_port=0), tmp_path) as opened:
        prepare_store(opened, None)
        ClickHouseWriter(opened.client).write_windows(
            [window(TENANT, "gpt-4o", ms(2026, 11, 3, 10), events=3000)]
        )
    env = {"TOKENOPS_CLICKHOUSE_URL": chdb_dsn, "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}

    def run(fmt: str) -> subprocess.CompletedProcess[bytes]:
        args = ["invoice", "--tenant", TENANT, "--month", "2026-11", "--format", fmt]
        done = subprocess.run([TOKENOPS, *args], env=env, capture_output=True, timeout=60)
        assert done.returncode == 0, done.stderr.decode()
        return done

    total = orjson.loads(run("json").stdout)["totals"]["USD"]  # equal to a hand sum elsewhere
    html = run("html").stdout.decode()
    assert f'Total USD</td><td class="n">{total}' in html
    assert "&lt;b&gt;acme&lt;/b&gt;" in html and "<b>acme</b>" not in html
    assert "PROVISIONAL" in html
    page, bare, blank = tmp_path / "invoice.html", tmp_path / "bare.html", tmp_path / "blank.html"
    page.write_text(html)
    bare.write_text(html.replace(f'Total USD</td><td class="n">{total}', "</td><td>"))
    blank.write_text("<!doctype html><html><body></body></html>")
    shot = _screenshot(page, tmp_path / "invoice.png")
    assert shot != _screenshot(blank, tmp_path / "blank.png"), "the invoice renders blank"
    assert shot != _screenshot(bare, tmp_path / "bare.png"), "the totals are not painted"
    dom = _chromium("--dump-dom", page.as_uri()).stdout.decode()
    assert f">{total}</td>" in dom

    csv = run("csv")
    rows = csv.stdout.decode().splitlines()
    assert rows[0].startswith("kind,model,region,token_type,quantity")
    assert len(rows) == 6 and all(r.startswith("line,gpt-4o,,") for r in rows[1:])  # no region
    assert f"total_USD={total}" in csv.stderr.decode()  # totals beside, never in, the rows

    parquet = tmp_path / "invoice.parquet"
    parquet.write_bytes(run("parquet").stdout)
    summed = chdb.query(f"SELECT sum(amount), count() FROM file('{parquet}', Parquet)", "CSV")
    assert str(summed).strip() == f"{total},5"
