"""The cluster DDL derived from the single-node migrations (no cluster files to drift).

chDB cannot run ON CLUSTER, so these check the rewrite as text; the integration test
`test_the_derived_cluster_ddl_parses_and_mirrors_the_single_node_schema` parses every
derived statement with ClickHouse's own parser.
"""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from tokenops.cli import app
from tokenops.sinks.clickhouse.errors import MigrationError
from tokenops.sinks.clickhouse.migrations import Migration, cluster_migrations, load_migrations


def derived(*sources: tuple[str, str]) -> list[list[str]]:
    """The cluster statements, per migration, of `sources` ((name, sql), numbered in order)."""
    single = [Migration(v, name, sql) for v, (name, sql) in enumerate(sources, start=1)]
    return [m.statements() for m in cluster_migrations(single)]


TOTALS = """
-- a comment the cluster text leaves out
CREATE TABLE IF NOT EXISTS totals
(
    tenant_id String,
    tokens UInt64
)
ENGINE = ReplacingMergeTree(tokens)
ORDER BY tenant_id;

CREATE VIEW IF NOT EXISTS totals_latest AS
SELECT * FROM totals FINAL;
"""


def test_a_tenant_table_is_sharded_behind_a_distributed_table_of_its_name() -> None:
    ((local, distributed, view),) = derived(("totals", TOTALS))
    assert local.startswith("CREATE TABLE IF NOT EXISTS totals_local ON CLUSTER tokenops\n(")
    assert (
        "ENGINE = ReplicatedReplacingMergeTree("
        "'/clickhouse/tables/{shard}/{database}/totals', '{replica}', tokens)\nORDER BY tenant_id"
    ) in local
    assert "comment" not in local
    assert distributed == (
        "CREATE TABLE IF NOT EXISTS totals ON CLUSTER tokenops AS totals_local\n"
        "ENGINE = Distributed(tokenops, currentDatabase(), totals_local, cityHash64(tenant_id))"
    )
    assert view == "CREATE VIEW IF NOT EXISTS totals_latest ON CLUSTER tokenops AS\n" + (
        "SELECT * FROM totals FINAL"
    )


def test_a_new_column_reaches_the_local_and_the_distributed_tables() -> None:
    """A later migration (say a region column) needs no hand-written cluster copy."""
    added = "ALTER TABLE totals ADD COLUMN IF NOT EXISTS region LowCardinality(String) DEFAULT '';"
    _, (local, distributed) = derived(("totals", TOTALS), ("region", added))
    assert local.startswith("ALTER TABLE totals_local ON CLUSTER tokenops\n    ADD COLUMN")
    assert distributed.startswith("ALTER TABLE totals ON CLUSTER tokenops\n    ADD COLUMN")
    ttl = "ALTER TABLE totals MODIFY TTL toDateTime(0) + INTERVAL 1 DAY;"
    _, (only_local,) = derived(("totals", TOTALS), ("ttl", ttl))
    assert only_local.startswith("ALTER TABLE totals_local ON CLUSTER tokenops")


def test_a_column_appended_to_the_sorting_key_alters_the_distributed_table_columns_only() -> None:
    """A sorting key may grow only by a column added in the same ALTER (0007): the local
    tables take both clauses, the Distributed table (no sorting key) the column."""
    appended = (
        "ALTER TABLE totals\n    ADD COLUMN IF NOT EXISTS region LowCardinality(String),\n"
        "    MODIFY ORDER BY (tenant_id, region);"
    )
    _, (local, distributed) = derived(("totals", TOTALS), ("region", appended))
    assert local == (
        "ALTER TABLE totals_local ON CLUSTER tokenops\n"
        "    ADD COLUMN IF NOT EXISTS region LowCardinality(String),\n"
        "    MODIFY ORDER BY (tenant_id, region)"
    )
    assert distributed == (
        "ALTER TABLE totals ON CLUSTER tokenops\n"
        "    ADD COLUMN IF NOT EXISTS region LowCardinality(String)"
    )


def test_a_small_table_is_replicated_everywhere_and_joins_with_it_stay_local() -> None:
    prices = """
CREATE TABLE IF NOT EXISTS rates
(
    model String,
    rate UInt64
)
ENGINE = MergeTree
ORDER BY model;

CREATE VIEW IF NOT EXISTS priced AS
SELECT t.tenant_id, t.tokens * r.rate AS amount
FROM totals AS t
LEFT JOIN rates AS r ON 1 = 1;
"""
    _, (table, view) = derived(("totals", TOTALS), ("rates", prices))
    assert table.startswith("CREATE TABLE IF NOT EXISTS rates ON CLUSTER tokenops\n(")
    assert "ReplicatedMergeTree('/clickhouse/tables/all/{database}/rates', '{replica}')" in table
    assert "GLOBAL" not in view


def test_reads_of_sharded_data_inside_a_view_become_global() -> None:
    letters = """
CREATE TABLE IF NOT EXISTS letters
(
    partition UInt32,
    offset UInt64
)
ENGINE = ReplacingMergeTree
ORDER BY (partition, offset);

CREATE OR REPLACE VIEW kept AS
SELECT * FROM totals_latest
WHERE tokens NOT IN (SELECT offset FROM letters);

CREATE OR REPLACE VIEW joined AS
SELECT * FROM totals AS t
INNER JOIN (SELECT * FROM letters FINAL) AS l ON t.tokens = l.offset;
"""
    _, (_, distributed, kept, joined) = derived(("totals", TOTALS), ("l", letters))
    assert distributed.endswith(
        "Distributed(tokenops, currentDatabase(), letters_local, partition)"
    )
    assert "tokens GLOBAL NOT IN (SELECT offset FROM letters)" in kept
    assert "GLOBAL INNER JOIN (SELECT * FROM letters FINAL)" in joined


def test_a_rebuilt_table_gets_a_fresh_path_and_copies_from_the_local_tables() -> None:
    rebuild = """
CREATE OR REPLACE TABLE totals
(
    tenant_id String,
    tokens UInt64
)
ENGINE = ReplacingMergeTree
ORDER BY (tenant_id, tokens)
AS SELECT * FROM totals;
"""
    _, (local, distributed) = derived(("totals", TOTALS), ("rebuild", rebuild))
    assert "'/clickhouse/tables/{shard}/{database}/totals/{uuid}', '{replica}')" in local
    assert local.endswith("AS SELECT * FROM totals_local")
    assert distributed.startswith("CREATE OR REPLACE TABLE totals ON CLUSTER tokenops AS")


def test_a_statement_without_a_cluster_form_is_refused_by_name() -> None:
    with pytest.raises(MigrationError, match="migration 0002_seed: no cluster form"):
        derived(("totals", TOTALS), ("seed", "INSERT INTO totals VALUES ('a', 1);"))


def test_every_checked_in_migration_has_a_cluster_form_with_the_single_node_checksum() -> None:
    single = load_migrations()
    cluster = cluster_migrations(single)
    assert [m.checksum for m in cluster] == [m.checksum for m in single]
    for migration in cluster:
        assert all(" ON CLUSTER tokenops" in s for s in migration.statements())


def test_the_cli_prints_the_derived_cluster_ddl_for_review() -> None:
    result = CliRunner().invoke(app, ["clickhouse", "ddl", "--variant", "cluster"])
    assert result.exit_code == 0, result.output
    assert "-- 0001_window_totals (cluster)\nCREATE TABLE IF NOT EXISTS window_totals_local" in (
        result.output
    )
    statements = sum(len(m.statements()) for m in load_migrations(variant="cluster"))
    assert result.output.count(" ON CLUSTER tokenops") == statements
