"""Errors of the billing store and its sink."""

from __future__ import annotations

from pathlib import Path

from tokenops.errors import TokenopsError


class ClickHouseError(TokenopsError):
    """The billing store could not be reached, migrated or queried."""


class StoreBusyError(ClickHouseError):
    """Another process holds the embedded store; chDB allows one process per store."""

    def __init__(
        self, path: Path, owner: str, endpoint: str | None = None, token: str | None = None
    ) -> None:
        where = f"; its query endpoint is {endpoint}" if endpoint else ""
        super().__init__(
            f"the embedded ClickHouse store {path} is in use by {owner}{where}",
            hint="chDB allows one process per store: stop that process, read through the "
            "running sink (usage/invoice/reconcile do so by themselves), or set "
            "TOKENOPS_CLICKHOUSE_URL to a ClickHouse server",
        )
        self.path = path
        self.owner = owner
        self.endpoint = endpoint
        self.token = token  # the endpoint's credential: never part of the message


class MigrationError(ClickHouseError):
    """A migration failed, or an applied migration's file changed afterwards."""


class PriceError(ClickHouseError):
    """prices.yaml is invalid, or usage has no price in effect."""
