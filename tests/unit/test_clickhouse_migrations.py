"""Applied migrations never change: each one's SQL, and the cluster DDL derived from it,
are pinned to what stores were migrated with.

A store's `schema_migrations` ledger holds each migration's checksum (the first 16 hex
digits of the SHA-256 of its single-node SQL, also for a cluster), and `migrate` refuses a
store whose recorded checksum no longer matches. The SQL is rendered by Python
(sinks/clickhouse/schema/, a module may lend text to a later one), so an edit of an
applied migration, or of the text it lends, fails here before it fails on a user's store.
A new migration adds its line to both tables.
"""

from __future__ import annotations

import hashlib

from tokenops.sinks.clickhouse.migrations import load_migrations

# The SHA-256 of each migration's single-node SQL, as stores recorded it (2026-12-03: the
# text of the former deploy/clickhouse/migrations/NNNN_name.sql files, byte for byte).
SINGLE = {
    "0001_window_totals": "38b602b24adadac60262c4cde0a7f29c669707bf37045b6afee099bb4aadbba6",
    "0002_raw_events": "5e8a50914fd5fe72f2a8829e4d0aa55cd090f40e9855f32b28b961fa3ed2b141",
    "0003_rollups": "9c261566107b5acea7a41bb6dba8623a0427e84c8625cd8760a078e41b554437",
    "0004_prices": "2ee43d7c7a7bdc140781b9de8e18bce6182e72b76a6ade20e3eaaa902ad259db",
    "0005_verdicts": "a356cd0e04e1ccfa81b760067291e959af5b9be2eef3a3613a1e4c1d7225c21a",
    "0006_finality": "ac491f8e7ddba0a88ac857ed5db867f87a56c2e15a7c9242f0dedea0bcbc71a3",
    "0007_window_region": "2bf48d97b6dde680e43ad2cbad600ea65d360d1c6a658fa1af7b22a609051a58",
    "0008_bundle_elements": "67728d3f91ed1efcaa5c613c760bbfc2da7e8dafcda59925a6001980ac036d77",
}

# The SHA-256 of each migration's cluster DDL (`tokenops clickhouse ddl --variant cluster`):
# a cluster migrated before a change of the rewrite rules keeps the old form, so a change
# here is a decision about existing clusters, not a refactoring.
CLUSTER = {
    "0001_window_totals": "fbf59f06879d194c19e1110ba23217e55b06f602571aa25592ee77395ddcb71a",
    "0002_raw_events": "7a6f5f2c9a8542a00a76f23dd66a855e85c6638500452e546816c93cfd00f652",
    "0003_rollups": "df1a036ccca80757c18c4da29accbe62fc5088921f381de8b9fcafd9adb91d3c",
    "0004_prices": "2237fb3c2a48a6acf16aaae6cb03d9cd98cfda9a646a60cd0ef2f6848a3d4f75",
    "0005_verdicts": "8b4f3a76272c675cd47d78c29058f487c5b6de051bc6b1ff48e8c637a6ecde4c",
    "0006_finality": "ff4abcad51c82d9f3f475512b464c866f4cb68ac959e45e5688bcd20f5a8d48f",
    "0007_window_region": "beffedea79d745ce340b7e555dc1b887b9f2e0382c883864ab06ffd69e54db0e",
    "0008_bundle_elements": "29200117a2342abb2eadd4d6ae99ca8136b0086e65b26662f3fdbf3eb91d4219",
}


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def test_every_migration_renders_the_sql_stores_recorded() -> None:
    migrations = load_migrations()
    assert {m.label: _sha256(m.sql) for m in migrations} == SINGLE
    assert [m.checksum for m in migrations] == [SINGLE[m.label][:16] for m in migrations]


def test_the_derived_cluster_ddl_is_the_one_clusters_were_migrated_with() -> None:
    cluster = load_migrations(variant="cluster")
    assert {m.label: _sha256(m.sql) for m in cluster} == CLUSTER
    assert [m.checksum for m in cluster] == [SINGLE[m.label][:16] for m in cluster]
