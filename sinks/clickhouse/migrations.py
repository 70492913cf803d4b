"""Versioned, idempotent schema migrations from the `schema` package (`mNNNN_name.py`).

Applied versions are recorded in `schema_migrations` with a checksum of the migration's
SQL. Every statement is written to be re-runnable (IF NOT EXISTS), so a crash half-way
through a migration is repaired by running `migrate` again. Editing an applied migration
is an error: add a new one instead. The cluster variant applies the same SQL, rewritten
by `cluster_ddl` (its checksum is still the single-node SQL's).
"""

from __future__ import annotations

import hashlib
import importlib
import logging
import pkgutil
import re
from dataclasses import dataclass

from clickhouse_connect.driver.client import Client

from tokenops.sinks.clickhouse import schema
from tokenops.sinks.clickhouse.cluster_ddl import (
    ON_CLUSTER,
    RETIRED_CLUSTER_CHECKSUMS,
    ClusterSchema,
)
from tokenops.sinks.clickhouse.errors import MigrationError

logger = logging.getLogger(__name__)

_MODULE = re.compile(r"^m(\d{4})_([a-z0-9_]+)$")
_STATEMENT_END = re.compile(r";[ \t]*(?:\n|$)")
_TTL = re.compile(r"TTL toDateTime\(time\) \+ toIntervalDay\((\d+)\)")

_LEDGER = """
CREATE TABLE IF NOT EXISTS schema_migrations{on_cluster}
(
    version UInt32,
    name String,
    checksum String,
    applied_at DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = {engine}
ORDER BY version
"""
_CLUSTER_LEDGER = (
    "ReplicatedMergeTree('/clickhouse/tables/all/{database}/schema_migrations', '{replica}')"
)


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str
    # the SQL a derived (cluster) migration was rewritten from: its checksum is that SQL's
    source: str | None = None

    @property
    def label(self) -> str:
        return f"{self.version:04d}_{self.name}"

    @property
    def checksum(self) -> str:
        return hashlib.sha256((self.source or self.sql).encode()).hexdigest()[:16]

    def statements(self) -> list[str]:
        chunks = (chunk.strip() for chunk in _STATEMENT_END.split(self.sql))
        return [c for c in chunks if any(_is_code(line) for line in c.splitlines())]


def _is_code(line: str) -> bool:
    stripped = line.strip()
    return bool(stripped) and not stripped.startswith("--")


def load_migrations(variant: str = "single") -> list[Migration]:
    """The migrations of the `schema` package, ordered by version, as `variant` applies
    them; a gap or a duplicate is an error."""
    found = []
    for module in sorted(m.name for m in pkgutil.iter_modules(schema.__path__)):
        match = _MODULE.match(module)
        if match is None:
            raise MigrationError(f"migration module {module} is not named mNNNN_name")
        sql = getattr(importlib.import_module(f"{schema.__name__}.{module}"), "SQL", None)
        if not isinstance(sql, str):
            raise MigrationError(f"migration module {module} has no SQL text")
        found.append(Migration(int(match[1]), match[2], sql))
    for expected, migration in enumerate(found, start=1):
        if migration.version != expected:
            raise MigrationError(f"migration {migration.version:04d} is out of sequence")
    return cluster_migrations(found) if variant == "cluster" else found


def cluster_migrations(migrations: list[Migration]) -> list[Migration]:
    """`migrations` rewritten for the cluster `tokenops` (in order: each one's rewrite
    depends on the tables the earlier ones made)."""
    cluster_schema = ClusterSchema()
    derived = []
    for migration in migrations:
        try:
            statements = [out for s in migration.statements() for out in cluster_schema.derive(s)]
        except MigrationError as exc:
            raise MigrationError(
                f"migration {migration.label}: {exc.message}", hint=exc.hint
            ) from exc
        sql = "".join(f"{statement};\n\n" for statement in statements)
        derived.append(Migration(migration.version, migration.name, sql, migration.sql))
    return derived


def migrate(
    client: Client,
    retention_days: int,
    variant: str = "single",
    migrations: list[Migration] | None = None,
) -> list[str]:
    """Apply every pending migration (of `migrations`, single-node form: default all) and
    the raw-event retention; returns what it did."""
    cluster = variant == "cluster"
    if migrations is None:
        migrations = load_migrations()
    client.command(
        _LEDGER.format(
            on_cluster=ON_CLUSTER if cluster else "",
            engine=_CLUSTER_LEDGER if cluster else "MergeTree",
        )
    )
    applied = {
        int(row[0]): str(row[2])
        for row in client.query("SELECT version, name, checksum FROM schema_migrations").result_rows
    }
    done = []
    retired = RETIRED_CLUSTER_CHECKSUMS if cluster else {}
    for migration in cluster_migrations(migrations) if cluster else migrations:
        label = migration.label
        if migration.version in applied:
            recorded = applied[migration.version]
            if recorded not in (migration.checksum, retired.get(migration.version)):
                raise MigrationError(
                    f"migration {label} changed after it was applied",
                    hint="never edit an applied migration; add a new mNNNN_name.py instead",
                )
            continue
        for statement in migration.statements():
            try:
                client.command(statement)
            except Exception as exc:
                raise MigrationError(f"migration {label} failed: {exc}") from exc
        client.insert(
            "schema_migrations",
            [[migration.version, migration.name, migration.checksum]],
            column_names=["version", "name", "checksum"],
        )
        logger.debug("applied migration %s", label)
        done.append(f"migration {label}")
    retention = _apply_retention(client, retention_days, cluster)
    return done + ([retention] if retention else [])


def _apply_retention(client: Client, days: int, cluster: bool) -> str | None:
    table = f"raw_events_local{ON_CLUSTER}" if cluster else "raw_events"
    engine = str(
        client.query(
            "SELECT engine_full FROM system.tables "
            "WHERE database = currentDatabase() AND name = {name:String}",
            parameters={"name": table.split()[0]},
        ).result_rows[0][0]
    )
    match = _TTL.search(engine)
    current = int(match[1]) if match else 0
    if current == days:
        return None
    if days == 0:
        client.command(f"ALTER TABLE {table} REMOVE TTL")
        return "raw_events retention: keep forever"
    # `days` is a validated int, not user text; DDL cannot take a bound parameter here.
    client.command(f"ALTER TABLE {table} MODIFY TTL toDateTime(time) + INTERVAL {days:d} DAY")
    return f"raw_events retention: {days} days"
