"""The billing store's schema: one module per migration, `mNNNN_name.py`, each holding the
single-node SQL that migration applies as `SQL` (`tokenops clickhouse ddl` prints it).

A migration, once applied, is history: its text is checksummed in each store's
`schema_migrations` ledger, and `tests/unit/test_clickhouse_migrations.py` pins every
module's SQL to that checksum, so an edit fails there before it fails on a user's store.
Change the schema with a new module instead.

Where a migration repeats a block an earlier one declared (the rollup grains, the raw
event columns), it takes that text from the earlier module rather than copying it: the
earlier module is frozen, so what it lends never changes. Never take SQL from living
code (the event contract, the writer): that code moves on, an applied migration must not.
"""
