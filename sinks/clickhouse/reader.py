"""Billing reads for the CLI: from the store directly, or through the running sink.

chDB allows one process per embedded store. When `tokenops sink clickhouse` holds it,
`open_store` raises StoreBusyError carrying the sink's endpoint and its per-run token
(from the store's owner file), and the same query is asked over HTTP instead, with the
token as its bearer credential; results come back in the same shapes either way. In the
sink itself, `HeldStoreReader` runs the same reads on the sink's open client.
"""

from __future__ import annotations

import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from datetime import date, datetime
from pathlib import Path
from threading import Lock
from typing import Any, TypeVar

import orjson
from clickhouse_connect.driver.client import Client

from tokenops.errors import TokenopsError
from tokenops.sinks.clickhouse import billing, reconcile, wire
from tokenops.sinks.clickhouse.bi_sql import PARAM_PREFIX, run_sql
from tokenops.sinks.clickhouse.errors import ClickHouseError, StoreBusyError
from tokenops.sinks.clickhouse.invoice_model import Invoice
from tokenops.sinks.clickhouse.settings import ClickHouseSettings
from tokenops.sinks.clickhouse.store import open_store

T = TypeVar("T")


class BillingReader:
    def __init__(self, settings: ClickHouseSettings, state_dir: Path) -> None:
        self.settings, self.state_dir = settings, state_dir

    def usage(
        self, tenant: str, start: datetime, end: datetime, by: billing.UsageBy
    ) -> billing.Usage:
        # Over HTTP the sink's settings give the zone: the process that holds the store.
        zone = self.settings.zone_of(tenant)
        params = {"tenant": tenant, "from": start.isoformat(), "to": end.isoformat(), "by": by}
        return self._read(
            lambda c: billing.usage(c, tenant, start, end, by, zone),
            "/v1/usage",
            params,
            wire.usage_from_json,
        )

    def invoice(self, tenant: str, month: date) -> Invoice:
        zone = self.settings.zone_of(tenant)
        return self._read(
            lambda c: billing.invoice(c, tenant, month, zone),
            f"/v1/invoices/{urllib.parse.quote(tenant, safe='')}",
            {"month": month.isoformat()[:7]},
            wire.invoice_from_json,
        )

    def reconcile(
        self, start: datetime, end: datetime
    ) -> tuple[list[str], list[reconcile.Difference]]:
        raw = self.settings.raw_events  # over HTTP: the sink's, which writes them
        params = {"from": start.isoformat(), "to": end.isoformat()}

        def remote(data: dict[str, Any]) -> tuple[list[str], list[reconcile.Difference]]:
            return list(data["checks"]), wire.differences_from_json(data["differences"])

        return self._read(
            lambda c: reconcile.reconcile(c, start, end, raw_events=raw),
            "/v1/reconcile",
            params,
            remote,
        )

    def sql(self, query: str, parameters: dict[str, str]) -> dict[str, Any]:
        params = {"sql": query, **{PARAM_PREFIX + k: v for k, v in parameters.items()}}
        return self._read(lambda c: run_sql(c, query, parameters), "/v1/sql", params, dict)

    def _read(
        self,
        local: Callable[[Client], T],
        path: str,
        params: dict[str, str],
        remote: Callable[[Any], T],
    ) -> T:
        folder = self.settings.embedded_path(self.state_dir)
        if folder is not None and not folder.exists():  # a read never creates a store
            raise ClickHouseError(
                f"there is no billing store at {folder}",
                hint="start `tokenops sink clickhouse` (or `tokenops stack up`), "
                "or set TOKENOPS_CLICKHOUSE_URL",
            )
        try:
            store = open_store(self.settings, self.state_dir)
        except StoreBusyError as busy:
            if not busy.endpoint:
                raise
            return remote(_get(busy.endpoint + path, params, busy.token))
        with store:
            try:
                return local(store.client)
            except Exception as exc:
                if "UNKNOWN_TABLE" in str(exc) or "Unknown table" in str(exc):
                    raise ClickHouseError(
                        f"the {store.description} has no billing tables yet",
                        hint="run `tokenops clickhouse migrate`",
                    ) from exc
                raise


class HeldStoreReader(BillingReader):
    """The reads of the process that holds the store (the sink's listener): on its open
    `client`, serialised by `lock` with the sink's writes on the same client."""

    def __init__(self, settings: ClickHouseSettings, client: Client, lock: Lock) -> None:
        super().__init__(settings, Path())
        self.client, self.lock = client, lock

    def _read(self, local: Callable[[Client], T], *_remote: Any) -> T:
        """Always the local read: this process holds the store."""
        with self.lock:
            return local(self.client)


def _get(url: str, params: dict[str, str], token: str | None) -> Any:
    full = f"{url}?{urllib.parse.urlencode(params)}"
    # No token: an owner file from before tokens, or unreadable; the sink answers 401.
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        request = urllib.request.Request(full, headers=headers)
        with urllib.request.urlopen(request, timeout=60) as response:
            return orjson.loads(response.read())
    except urllib.error.HTTPError as exc:
        try:
            body = orjson.loads(exc.read() or b"{}")
        except orjson.JSONDecodeError:
            body = {}  # e.g. 421 from the listener (tokenops/listen.py): plain text
        detail = body.get("error", exc.reason)
        if "error_id" in body:  # the cause is in the sink's log under this id
            detail = f"{detail} (error_id {body['error_id']} in the sink's log)"
        if exc.code == 401:
            raise ClickHouseError(
                f"the running sink refused the query: {detail}",
                hint="run this as the user that runs `tokenops sink clickhouse`: its token "
                "is in the store's owner file, readable by that user only",
            ) from exc
        if exc.code == 400:  # the caller's mistake (unknown tenant): said as a local read would
            raise TokenopsError(str(detail), hint=body.get("hint")) from exc
        raise ClickHouseError(
            f"the running sink refused the query: {detail}", hint=body.get("hint")
        ) from exc
    except OSError as exc:
        raise ClickHouseError(
            f"the store is held by a sink whose endpoint {url} does not answer: {exc}",
            hint="check that `tokenops sink clickhouse` is running and healthy",
        ) from exc
