"""Billing reads for the CLI: from the store directly, or through the running sink.

chDB allows one process per embedded store. When `tokenops sink clickhouse` holds it,
`open_store` raises StoreBusyError carrying the sink's endpoint, and the same query is
asked over HTTP instead; results come back in the same shapes either way.
"""

from __future__ import annotations

import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from datetime import date, datetime
from pathlib import Path
from typing import Any, TypeVar

import orjson
from clickhouse_connect.driver.client import Client

from tokenops.sinks.clickhouse import billing, reconcile, wire
from tokenops.sinks.clickhouse.errors import ClickHouseError, StoreBusyError
from tokenops.sinks.clickhouse.settings import ClickHouseSettings
from tokenops.sinks.clickhouse.store import open_store

T = TypeVar("T")


class BillingReader:
    def __init__(self, settings: ClickHouseSettings, state_dir: Path) -> None:
        self.settings, self.state_dir = settings, state_dir

    def usage(
        self, tenant: str, start: datetime, end: datetime, by: billing.UsageBy
    ) -> list[dict[str, Any]]:
        params = {"tenant": tenant, "from": start.isoformat(), "to": end.isoformat(), "by": by}
        return self._read(
            lambda c: billing.usage(c, tenant, start, end, by), "/v1/usage", params, list
        )

    def invoice(self, tenant: str, month: date) -> billing.Invoice:
        params = {"tenant": tenant, "month": month.isoformat()[:7]}
        return self._read(
            lambda c: billing.invoice(c, tenant, month),
            "/v1/invoice",
            params,
            wire.invoice_from_json,
        )

    def reconcile(
        self, start: datetime, end: datetime
    ) -> tuple[list[str], list[reconcile.Difference]]:
        raw = self.settings.raw_events
        params = {"from": start.isoformat(), "to": end.isoformat(), "raw": "1" if raw else "0"}

        def remote(data: dict[str, Any]) -> tuple[list[str], list[reconcile.Difference]]:
            return list(data["checks"]), wire.differences_from_json(data["differences"])

        return self._read(
            lambda c: reconcile.reconcile(c, start, end, raw_events=raw),
            "/v1/reconcile",
            params,
            remote,
        )

    def _read(
        self,
        local: Callable[[Client], T],
        path: str,
        params: dict[str, str],
        remote: Callable[[Any], T],
    ) -> T:
        try:
            store = open_store(self.settings, self.state_dir)
        except StoreBusyError as busy:
            if not busy.endpoint:
                raise
            return remote(_get(busy.endpoint + path, params))
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


def _get(url: str, params: dict[str, str]) -> Any:
    full = f"{url}?{urllib.parse.urlencode(params)}"
    try:
        with urllib.request.urlopen(full, timeout=60) as response:
            return orjson.loads(response.read())
    except urllib.error.HTTPError as exc:
        try:
            body = orjson.loads(exc.read() or b"{}")
        except orjson.JSONDecodeError:
            body = {}  # e.g. 421 from the listener (tokenops/listen.py): plain text
        detail = body.get("error", exc.reason)
        if "error_id" in body:  # the cause is in the sink's log under this id
            detail = f"{detail} (error_id {body['error_id']} in the sink's log)"
        raise ClickHouseError(f"the running sink refused the query: {detail}") from exc
    except OSError as exc:
        raise ClickHouseError(
            f"the store is held by a sink whose endpoint {url} does not answer: {exc}",
            hint="check that `tokenops sink clickhouse` is running and healthy",
        ) from exc
