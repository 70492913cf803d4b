"""`tokenops api serve` as a test's child process on the session broker, with one
tenant key per tenant asked for and an admin key, and a small JSON client."""

from __future__ import annotations

import os
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from tests.processes import TokenopsProcess
from tokenops.api.keys import new_key
from tokenops.settings import KafkaSettings
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
