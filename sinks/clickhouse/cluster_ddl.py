"""The cluster DDL, derived from the single-node migrations: one schema, written once.

The migrations of `schema/` are the only schema source. For a replicated, sharded
cluster (`TOKENOPS_CLICKHOUSE_SCHEMA_VARIANT=cluster`) each statement is rewritten here:

- every statement runs `ON CLUSTER tokenops`;
- a table with a `tenant_id` column is sharded by `cityHash64(tenant_id)`, else one with
  a `partition` column by `partition` (every revision of a window, every duplicate of an
  event and every rollup bucket of a tenant lands on one shard, so FINAL per shard stays
  exact). It becomes `<name>_local`, a `Replicated*MergeTree` with the same engine
  arguments at `/clickhouse/tables/{shard}/{database}/<name>`, plus a `Distributed` table
  under the single-node name, so queries and views keep their names;
- any other table (prices) is small and replicated to every node (a path without
  {shard}), so joins with it stay local;
- `CREATE OR REPLACE TABLE` gets a ZooKeeper path of its own (`.../<name>/{uuid}`), so the
  rebuilt table never meets the old one's path, and reads its `AS SELECT` from the local
  tables;
- `ALTER TABLE` of a sharded table alters the local tables, and column changes also the
  Distributed table (it copied the columns when it was created);
- in views, `IN (SELECT ...)` and `JOIN` over sharded data become `GLOBAL`, so each shard
  sees all of it.

Comments of the source are left out: the derived text is for ClickHouse, the source SQL
is for people. `tokenops clickhouse ddl --variant cluster` prints it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from tokenops.sinks.clickhouse.errors import MigrationError

CLUSTER = "tokenops"
ON_CLUSTER = f" ON CLUSTER {CLUSTER}"

# Versions 1-6 were once applied from hand-written cluster files; a cluster migrated then
# keeps those files' checksums in its ledger, which stand for the same schema.
RETIRED_CLUSTER_CHECKSUMS = {
    1: "8ba7fb958bfa8047",
    2: "abe471d4ddb3a6fd",
    3: "81d9a6fefafc7a4b",
    4: "4b2764637f90d53f",
    5: "4234ece932cf3815",
    6: "a8b2aa0dc170ab4d",
}

_CREATE_TABLE = re.compile(
    r"^CREATE (?P<verb>OR REPLACE TABLE|TABLE IF NOT EXISTS) (?P<name>\w+)\s*"
    r"\n\((?P<columns>.*)\n\)\s*"
    r"ENGINE = (?P<engine>\w*MergeTree)(?:\((?P<args>[^)]*)\))?"
    r"(?P<rest>.*)$",
    re.S,
)
_CREATE_VIEW = re.compile(
    r"^CREATE (?P<verb>OR REPLACE VIEW|VIEW IF NOT EXISTS) (?P<name>\w+) AS\b(?P<body>.*)$", re.S
)
_ALTER = re.compile(r"^ALTER TABLE (?P<name>\w+)\s+(?P<change>.*)$", re.S)
_COLUMN_CHANGE = re.compile(r"^(?:ADD|DROP|MODIFY|RENAME) COLUMN\b")
_FROM = re.compile(r"\b(FROM|JOIN) (\w+)")
# IN (SELECT ... FROM t  /  [kind] JOIN (SELECT ... FROM t  /  [kind] JOIN t
_DISTRIBUTED_READ = re.compile(
    r"\b(?P<op>(?:NOT )?IN|(?:(?:ASOF |ANY |ALL |SEMI |ANTI )?(?:INNER |LEFT |RIGHT |FULL )?"
    r"(?:OUTER )?)JOIN) (?P<what>\(SELECT [^()]*?\bFROM (?P<sub>\w+)|(?P<table>\w+))"
)


@dataclass
class ClusterSchema:
    """What the migrations so far made: the sharded tables (name -> sharding key) and the
    views reading sharded data. Derive migrations in order through one instance."""

    sharded: dict[str, str] = field(default_factory=dict)
    replicated: set[str] = field(default_factory=set)
    sharded_views: set[str] = field(default_factory=set)

    def derive(self, statement: str) -> list[str]:
        """The cluster statements for one single-node statement."""
        text = "\n".join(line for line in statement.splitlines() if not _is_comment(line))
        text = text.strip()
        for pattern, rewrite in (
            (_CREATE_TABLE, self._table),
            (_CREATE_VIEW, self._view),
            (_ALTER, self._alter),
        ):
            match = pattern.match(text)
            if match:
                return rewrite(match)
        raise MigrationError(
            f"no cluster form for the statement {text[:60]!r}...",
            hint="the cluster DDL is derived (sinks/clickhouse/cluster_ddl.py): use CREATE "
            "TABLE/VIEW or ALTER TABLE, or teach it the new statement",
        )

    def _reads_sharded(self, text: str) -> bool:
        return any(
            name in self.sharded or name in self.sharded_views for _, name in _FROM.findall(text)
        )

    def _table(self, m: re.Match[str]) -> list[str]:
        name, verb, columns = m["name"], m["verb"], m["columns"]
        replace = verb.startswith("OR REPLACE")
        key = _sharding_key(columns)
        local = f"{name}_local" if key else name
        path = f"/clickhouse/tables/{'{shard}' if key else 'all'}/{{database}}/{name}"
        path += "/{uuid}" if replace else ""
        args = ", ".join([f"'{path}'", "'{replica}'", *([m["args"]] if m["args"] else [])])
        rest = _FROM.sub(lambda f: f"{f[1]} {self._local(f[2])}", m["rest"])
        out = [
            f"CREATE {verb} {local}{ON_CLUSTER}\n({columns}\n)\n"
            f"ENGINE = Replicated{m['engine']}({args}){rest}"
        ]
        if key:
            out.append(
                f"CREATE {verb} {name}{ON_CLUSTER} AS {local}\n"
                f"ENGINE = Distributed({CLUSTER}, currentDatabase(), {local}, {key})"
            )
            self.sharded[name] = key
        else:
            self.replicated.add(name)
        return out

    def _view(self, m: re.Match[str]) -> list[str]:
        name, body = m["name"], m["body"]
        if self._reads_sharded(body):
            self.sharded_views.add(name)
        body = _DISTRIBUTED_READ.sub(self._global, body)
        return [f"CREATE {m['verb']} {name}{ON_CLUSTER} AS{body}"]

    def _global(self, m: re.Match[str]) -> str:
        read = m["sub"] or m["table"]
        if read in self.sharded or read in self.sharded_views:
            return f"GLOBAL {m[0]}"
        return m[0]

    def _alter(self, m: re.Match[str]) -> list[str]:
        name, change = m["name"], m["change"]
        out = [f"ALTER TABLE {self._local(name)}{ON_CLUSTER}\n    {change}"]
        # the Distributed table takes the column changes only (a key change such as
        # MODIFY ORDER BY, in the same ALTER as the column it appends, is the local one's)
        columns = [c for c in _clauses(change) if _COLUMN_CHANGE.match(c)]
        if name in self.sharded and columns:
            out.append(f"ALTER TABLE {name}{ON_CLUSTER}\n    " + ",\n    ".join(columns))
        return out

    def _local(self, name: str) -> str:
        return f"{name}_local" if name in self.sharded else name


def _sharding_key(columns: str) -> str | None:
    names = {line.split()[0] for line in columns.splitlines() if line.strip()}
    if "tenant_id" in names:
        return "cityHash64(tenant_id)"
    if "partition" in names:
        return "partition"
    return None


def _clauses(change: str) -> list[str]:
    """The comma-separated clauses of an ALTER, commas inside parentheses kept."""
    clauses, depth, start = [], 0, 0
    for i, char in enumerate(change):
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == "," and depth == 0:
            clauses.append(change[start:i].strip())
            start = i + 1
    clauses.append(change[start:].strip())
    return clauses


def _is_comment(line: str) -> bool:
    return line.strip().startswith("--")
