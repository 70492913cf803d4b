"""The ClickHouse sink's app: the API's query routes over the sink's open client.

chDB allows one process per embedded store, so while `tokenops sink clickhouse` holds
it, the CLI and `tokenops api` read through this app (the store's owner file names its
address). It is `tokenops api`'s own routes and answers (`queries`, `app`), plus the
admin-only /v1/reconcile and /v1/sql, with /metrics and /healthz for probes and the
scraper. No ingest, quotas or OpenAPI document here.

Credentials (docs/security.md): the sink's per-run token (a random value it writes to
the owner file, mode 0600, so only its user can read it), or an admin key of tokenops
api's key store when that file exists. Anything else is 401.
"""

from __future__ import annotations

import hmac
import threading
from pathlib import Path

from prometheus_client import CollectorRegistry
from starlette.routing import Route
from starlette.types import ASGIApp

from tokenops.api.app import SHARED_ROUTES, HostCheck, starlette_app
from tokenops.api.keys import ApiKey, KeyStore, read_entries
from tokenops.api.queries import get_reconcile, get_sql
from tokenops.api.state import QueryState
from tokenops.listen import parse_allowed_hosts
from tokenops.sinks.clickhouse.reader import HeldStoreReader
from tokenops.sinks.clickhouse.store import ClickHouseStore

RUN_TOKEN = ApiKey("sink-run-token", None)  # reads every tenant, as an admin key does

SINK_ROUTES = [
    Route("/v1/reconcile", get_reconcile, methods=["GET"]),
    Route("/v1/sql", get_sql, methods=["GET"]),
    *SHARED_ROUTES,
]


class SinkKeys:
    """The run token, else an admin key of `api_keys` (tenant keys are not taken: the
    sink's reconcile and sql see every tenant)."""

    def __init__(self, token: str, api_keys: KeyStore | None) -> None:
        self._token = token.encode()
        self.api_keys = api_keys

    def lookup(self, key: str) -> ApiKey | None:
        if hmac.compare_digest(key.encode(), self._token):  # no timing hint of the token
            return RUN_TOKEN
        found = self.api_keys.lookup(key) if self.api_keys is not None else None
        return found if found is not None and found.admin else None

    def __repr__(self) -> str:  # never the token, whatever prints this object
        return "SinkKeys(token=***)"


def create_sink_app(
    store: ClickHouseStore,
    lock: threading.Lock,
    registry: CollectorRegistry,
    token: str,
    api_keys_file: Path | None,
) -> ASGIApp:
    """The app over the sink's open client (shared with its writes under `lock`). The
    billing routes answer for an embedded store only: a server's readers connect to it
    themselves (404 otherwise)."""
    settings = store.settings
    api_keys = None
    if api_keys_file is not None and api_keys_file.exists():
        read_entries(api_keys_file)  # a shared or broken keys file stops the start
        api_keys = KeyStore(api_keys_file)
    state = QueryState(
        keys=SinkKeys(token, api_keys),
        registry=registry,
        reader=HeldStoreReader(settings, store.client, lock) if store.path else None,
    )
    app = starlette_app(SINK_ROUTES, state)
    return HostCheck(app, parse_allowed_hosts(settings.http_allowed_hosts))
