"""The Grafana billing dashboard's SQL runs against the real schema (chDB, every
migration applied, prices loaded) and gives the invoice's amounts.

Grafana's ClickHouse plugin expands its macros before the query reaches ClickHouse;
`expand` does the same, the way the plugin documents them, so a renamed column or view
in a migration fails here instead of in a finance team's browser.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from tests.clickhouse_helpers import ms, window
from tokenops.paths import deploy_dir
from tokenops.sinks.clickhouse import ClickHouseSettings, open_store
from tokenops.sinks.clickhouse.service import prepare_store
from tokenops.sinks.clickhouse.writer import ClickHouseWriter

DASHBOARD = deploy_dir() / "grafana" / "tokenops-billing-dashboard.json"
FROM, TO = datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC)


def expand(sql: str, tenants: list[str]) -> str:
    """The plugin's macros and Grafana's `${tenant:singlequote}` for a fixed range."""
    start, end = int(FROM.timestamp()), int(TO.timestamp())
    sql = re.sub(
        r"\$__timeFilter\((\w+)\)",
        rf"\1 >= toDateTime({start}) AND \1 <= toDateTime({end})",
        sql,
    )
    sql = re.sub(
        r"\$__timeInterval\((\w+)\)",
        r"toStartOfInterval(toDateTime(\1), INTERVAL 3600 second)",
        sql,
    )
    sql = sql.replace("$__fromTime", f"toDateTime({start})").replace(
        "$__toTime", f"toDateTime({end})"
    )
    sql = sql.replace("${tenant:singlequote}", ", ".join(f"'{t}'" for t in tenants))
    assert "$" not in sql, f"a macro the test does not know: {sql}"
    return sql


def test_every_billing_panel_query_runs_on_the_schema_and_matches_the_invoice(
    chdb_dsn: str, tmp_path: Path
) -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] == "tokenops-billing"
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    with open_store(ClickHouseSettings(url=chdb_dsn, http_port=0), tmp_path) as store:
        prepare_store(store, None)  # migrations and deploy/prices.yaml
        ClickHouseWriter(store.client).write_windows(
            [
                window("t-a", "gpt-4o", ms(2026, 11, 3, 10), events=3),
                window("t-a", "gpt-4o-mini", ms(2026, 11, 3, 11), events=2),
                window("t-b", "gpt-4o", ms(2026, 11, 4, 9), events=1),
                window("t-b", "no-price-model", ms(2026, 11, 4, 9), events=1),
            ]
        )
        variable = dashboard["templating"]["list"][1]
        tenants = [row[0] for row in store.client.query(variable["query"]).result_rows]
        assert tenants == ["t-a", "t-b"]
        results = {}
        for panel in dashboard["panels"]:
            for target in panel["targets"]:
                assert target["datasource"]["type"] == "grafana-clickhouse-datasource"
                rows = store.client.query(expand(target["rawSql"], tenants)).named_results()
                results[panel["title"]] = list(rows)
                assert results[panel["title"]], f"panel {panel['title']!r} shows nothing"
        invoice = {
            (tenant, currency): amount
            for tenant, currency, amount in store.client.query(
                "SELECT tenant_id, currency, sum(amount) FROM invoice_lines "
                "WHERE priced AND month = '2026-11-01' GROUP BY tenant_id, currency"
            ).result_rows
        }
    by_tenant = {(r["tenant"], r["currency"]): r["cost"] for r in results["Cost per tenant"]}
    assert by_tenant == invoice
    by_model = results["Cost per tenant and model"]
    assert {(r["tenant"], r["model"]) for r in by_model} == {
        ("t-a", "gpt-4o"),
        ("t-a", "gpt-4o-mini"),
        ("t-b", "gpt-4o"),
    }
    assert sum(Decimal(r["cost"]) for r in by_model) == sum(map(Decimal, invoice.values()))
    assert results["Unpriced usage (tokens)"][0]["unpriced_tokens"] > 0  # no-price-model
    assert results["Tenants billed"][0]["tenants"] == 2
