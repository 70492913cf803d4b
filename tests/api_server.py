"""`tokenops api serve` as a test's child process on the session broker, with one
tenant key per tenant asked for and an admin key, and a small JSON client."""

from __future__ import annotations

import os
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from tests.processes import TokenopsProcess
from tokenops.api.keys import new_key
from tokenops.schemas import WindowTotals
from tokenops.settings import KafkaSettings
from tokenops.sinks.clickhouse import ClickHouseSettings, open_store
from tokenops.sinks.clickhouse.service import prepare_store
from tokenops.sinks.clickhouse.writer import ClickHouseWriter
from tokenops.stack.process import free_port


@dataclass
class ApiServer:
    url: str
    port: int
    keys: dict[str, str]  # tenant (or "admin") -> key
    process: TokenopsProcess
    env: dict[str, str] = field(default_factory=dict)

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        *,
        key: str | None = "admin",
        headers: dict[str, str] | None = None,
    ) -> tuple[int, dict[str, str], bytes]:
        """(status, headers lower-cased, body); `key` names an entry of `keys`."""
        sent = dict(headers or {})
        if key is not None:
            sent["Authorization"] = f"Bearer {self.keys.get(key, key)}"
        request = urllib.request.Request(self.url + path, body, sent, method=method)
        try:
            with urllib.request.urlopen(request, timeout=30) as answer:
                return answer.status, _lower(answer.headers), answer.read()
        except urllib.error.HTTPError as error:
            return error.code, _lower(error.headers), error.read()

    def post_json(self, path: str, payload: Any, content_type: str, key: str = "admin") -> Any:
        status, _, body = self.request(
            "POST", path, orjson.dumps(payload), key=key, headers={"Content-Type": content_type}
        )
        return status, orjson.loads(body)


def _lower(headers: Any) -> dict[str, str]:
    return {name.lower(): value for name, value in headers.items()}


def start_api(
    kafka: KafkaSettings,
    topic: str,
    state: Path,
    tenants: list[str],
    extra_env: dict[str, str] | None = None,
) -> ApiServer:
    keys_file = state / "api-keys.json"
    keys = {tenant: new_key(keys_file, tenant)[1] for tenant in tenants}
    keys["admin"] = new_key(keys_file, None)[1]
    port = free_port()
    env = {
        **os.environ,
        "TOKENOPS_API_QUOTAS": "false",  # on with `full_env` only: it needs its topics
        "TOKENOPS_API_QUERIES": "false",
        "TOKENOPS_KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
        "TOKENOPS_PRODUCER_TOPIC": topic,
        "TOKENOPS_PRODUCER_SPOOL_DIR": str(state / "spool"),
        "TOKENOPS_API_PORT": str(port),
        "TOKENOPS_API_KEYS_FILE": str(keys_file),
        **(extra_env or {}),
    }
    process = TokenopsProcess(["api", "serve"], env, state / "api.log")
    process.wait_healthy(port, "tokenops api")
    return ApiServer(f"http://127.0.0.1:{port}", port, keys, process, env)


def full_env(
    new_topic: Callable[..., str], chdb_dsn: str, state: Path, windows: list[WindowTotals]
) -> dict[str, str]:
    """Settings for a server that also answers queries: a migrated billing store holding
    `windows`, and fresh quota, aggregates and alert topics."""
    with open_store(ClickHouseSettings(url=chdb_dsn), state) as store:
        prepare_store(store, None)
        ClickHouseWriter(store.client).write_windows(windows)
    compacted = {"cleanup.policy": "compact"}
    return {
        "TOKENOPS_API_QUOTAS": "true",
        "TOKENOPS_API_QUERIES": "true",
        "TOKENOPS_CLICKHOUSE_URL": chdb_dsn,
        "TOKENOPS_STACK_STATE_DIR": str(state),
        "TOKENOPS_TOPIC_AGGREGATES": new_topic("aggs", 2, compacted),
        "TOKENOPS_TOPIC_QUOTAS": new_topic("quotas", 1, compacted),
        "TOKENOPS_TOPIC_QUOTA_ALERTS": new_topic("alerts", 2),
        "TOKENOPS_TOPIC_DEAD_LETTER": new_topic("dlq", 2),
    }
