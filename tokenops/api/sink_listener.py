"""`SinkListener`: the ClickHouse sink's app on uvicorn, on a thread of the sink.

The stack of `tokenops api` (uvicorn with uvloop and httptools, tokenops/api/server.py;
with tokenops/listen.py's slow-client rules, slow_clients.py), on its own event loop in
a daemon thread, so the sink's consume-and-write loop keeps
the main thread. The socket is bound here, before the thread starts, so a taken port
is the caller's error at once and port 0 gets its number before the address is
advertised in the store's owner file.
"""

from __future__ import annotations

import logging
import secrets
import socket
import threading
import time
from pathlib import Path

import uvicorn
from prometheus_client import CollectorRegistry

from tokenops.api.sink_app import create_sink_app
from tokenops.api.slow_clients import guarded_protocol
from tokenops.listen import LOOPBACK, MAX_CONNECTIONS, TIMEOUT_S
from tokenops.sinks.clickhouse.errors import ClickHouseError
from tokenops.sinks.clickhouse.store import ClickHouseStore

logger = logging.getLogger(__name__)
START_TIMEOUT_S = 10.0


class SinkListener:
    """Serves the sink's app (tokenops/api/sink_app.py) from `start()` to `stop()`.

    `token` is this run's credential, random per start; the sink advertises it with
    `url` in the owner file. It is never logged.
    """

    def __init__(
        self,
        store: ClickHouseStore,
        lock: threading.Lock,
        registry: CollectorRegistry,
        api_keys_file: Path | None,
        *,
        timeout_s: float = TIMEOUT_S,
    ) -> None:
        settings = store.settings
        host, port = settings.http_host or LOOPBACK, settings.http_port
        self.token = secrets.token_urlsafe(32)
        app = create_sink_app(store, lock, registry, self.token, api_keys_file)
        try:
            family = socket.AF_INET6 if ":" in host else socket.AF_INET
            self.socket = socket.create_server((host, port), family=family, backlog=128)
        except OSError as exc:
            raise ClickHouseError(
                f"the sink's endpoint cannot listen on {host}:{port}: {exc.strerror}",
                hint="set TOKENOPS_CLICKHOUSE_HTTP_PORT to a free port, or 0 to turn it off",
            ) from exc
        self.host, self.port = host, int(self.socket.getsockname()[1])
        shown = LOOPBACK if host in ("0.0.0.0", "::") else host
        self.url = (
            f"http://[{shown}]:{self.port}" if ":" in shown else f"http://{shown}:{self.port}"
        )
        config = uvicorn.Config(
            app,
            loop="uvloop",
            # httptools, with the stdlib listener's slow-client rules (slow_clients.py)
            http=guarded_protocol(timeout_s, MAX_CONNECTIONS),
            log_config=None,
            access_log=False,
            server_header=False,
            proxy_headers=False,
            # 503 only when every slot is answering: idle ones are closed before that
            limit_concurrency=2 * MAX_CONNECTIONS,
            timeout_keep_alive=15,
        )
        self.server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self.server.run,
            kwargs={"sockets": [self.socket]},
            name="clickhouse-sink-http",
            daemon=True,
        )

    def start(self) -> None:
        self._thread.start()
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise ClickHouseError("the sink's endpoint did not start; see the log above")
            time.sleep(0.01)
        logger.info("clickhouse-sink-http listening host=%s port=%d", self.host, self.port)

    def stop(self) -> None:
        self.server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        self.socket.close()
