"""Opening the billing store: a ClickHouse server by URL, or the embedded chDB store.

chDB runs ClickHouse inside the process and allows one process per store folder. Every
tokenops process that opens an embedded store first takes an exclusive lock on
`<store>.owner` and writes its pid, role and query endpoint there, so a second process
gets one clear line naming the holder instead of chDB's `Error initializing
EmbeddedServer` traceback. The sink also writes its listener's per-run token there,
which is why the file is owner-only (0600): whoever may read it may query the store.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import sys
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import clickhouse_connect
from clickhouse_connect.driver.client import Client

from tokenops.secrets import MASK, redact_url
from tokenops.sinks.clickhouse.errors import ClickHouseError, StoreBusyError
from tokenops.sinks.clickhouse.settings import ClickHouseSettings

logger = logging.getLogger(__name__)

# Locks this process holds, by store path, with a reference count: in one process
# several clients may share a store (chDB allows it), e.g. the sink and its endpoint.
_held: dict[Path, tuple[IO[str], int]] = {}


class ClickHouseStore:
    """An open client on the billing store, plus the owner lock of an embedded store."""

    def __init__(self, client: Client, settings: ClickHouseSettings, path: Path | None) -> None:
        self.client = client
        self.settings = settings
        self.path = path

    @property
    def description(self) -> str:
        return f"embedded store {self.path}" if self.path else f"server {self.settings.url}"

    def advertise(self, endpoint: str, token: str) -> None:
        """Record this process's query endpoint and the token it takes in the owner file,
        for the readers it blocks (the CLI, tokenops api) on this machine."""
        if self.path is not None and self.path in _held:
            _write_owner(_held[self.path][0], endpoint, token)

    def close(self) -> None:
        self.client.close()
        if self.path is not None:
            _release(self.path)

    def __enter__(self) -> ClickHouseStore:
        return self

    def __exit__(self, *exc: tuple[type[BaseException], BaseException, TracebackType]) -> None:
        self.close()


def open_store(settings: ClickHouseSettings, state_dir: Path) -> ClickHouseStore:
    """Connect, creating the database if needed; raises StoreBusyError or ClickHouseError."""
    path = settings.embedded_path(state_dir)
    if path is None:
        return ClickHouseStore(_server_client(settings), settings, None)
    _acquire(path)
    try:
        client = _embedded_client(path, settings.database)
    except BaseException:
        _release(path)
        raise
    return ClickHouseStore(client, settings, path)


def _embedded_client(path: Path, database: str) -> Client:
    path.mkdir(parents=True, exist_ok=True)
    dsn = f"chdb://{path}"
    try:
        bootstrap = clickhouse_connect.get_client(dsn=dsn)
        bootstrap.command(f"CREATE DATABASE IF NOT EXISTS {database}")
        bootstrap.close()
        return clickhouse_connect.get_client(dsn=dsn, database=database)
    except Exception as exc:
        if "EmbeddedServer" in str(exc) and "already initialized" not in str(exc):
            raise StoreBusyError(path, "another process (one that did not register)") from exc
        raise ClickHouseError(f"cannot open the embedded ClickHouse store {path}: {exc}") from exc


def server_client_options(settings: ClickHouseSettings) -> dict[str, Any]:
    """clickhouse-connect's `get_client` arguments for a server (`http(s)://` URL):
    user, password, and TLS (server verification, CA, client certificate for mTLS)."""
    options: dict[str, Any] = {
        "dsn": settings.url,
        "username": settings.username,
        "password": settings.password.get_secret_value() if settings.password else "",
        "verify": settings.verify_tls,
        "connect_timeout": settings.connect_timeout_s,
        # clickhouse-connect takes TLS from a DSN's scheme only on ports 443 and 8443;
        # anywhere else `https://` would quietly become plain HTTP, password included.
        "secure": bool(settings.url and settings.url.startswith("https://")),
    }
    for name, value in (
        ("ca_cert", settings.ca_cert),
        ("client_cert", settings.client_cert),
        ("client_cert_key", settings.client_key),
    ):
        if value is not None:
            options[name] = str(value)
    return options


def _server_client(settings: ClickHouseSettings) -> Client:
    options = server_client_options(settings)
    try:
        bootstrap = clickhouse_connect.get_client(**options)
        bootstrap.command(f"CREATE DATABASE IF NOT EXISTS {settings.database}")
        bootstrap.close()
        return clickhouse_connect.get_client(**options, database=settings.database)
    except Exception as exc:
        url = redact_url(settings.url or "")
        password = options["password"]
        reason = str(exc)
        if len(password) >= 6:  # shorter ones would garble the text more than they hide
            reason = reason.replace(password, MASK)
        raise ClickHouseError(
            f"cannot connect to ClickHouse at {url}: {redact_url(reason)}",
            hint="check TOKENOPS_CLICKHOUSE_URL, _USERNAME, _PASSWORD and the TLS settings",
        ) from exc


def read_owner(path: Path) -> dict[str, Any]:
    """What the holder of an embedded store wrote about itself (empty if unknown)."""
    try:
        data = json.loads(_owner_file(path).read_text() or "{}")
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _owner_file(path: Path) -> Path:
    return path.with_name(path.name + ".owner")


def _acquire(path: Path) -> None:
    if path in _held:
        handle, count = _held[path]
        _held[path] = (handle, count + 1)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    # Owner-only: it will hold the sink's token. fchmod also tightens a file an older
    # tokenops created with the umask's mode.
    descriptor = os.open(_owner_file(path), os.O_RDWR | os.O_CREAT, 0o600)
    os.fchmod(descriptor, 0o600)
    handle = os.fdopen(descriptor, "a+")  # held for the store's lifetime
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        owner = read_owner(path)
        who = f"pid {owner.get('pid', '?')} ({owner.get('command', 'unknown command')})"
        raise StoreBusyError(path, who, owner.get("endpoint"), owner.get("token")) from None
    _write_owner(handle, None, None)
    _held[path] = (handle, 1)


def _write_owner(handle: IO[str], endpoint: str | None, token: str | None) -> None:
    command = " ".join([Path(sys.argv[0]).name, *sys.argv[1:3]]) if sys.argv else "python"
    owner = {"pid": os.getpid(), "command": command, "endpoint": endpoint, "token": token}
    handle.seek(0)
    handle.truncate()
    handle.write(json.dumps(owner))
    handle.flush()


def _release(path: Path) -> None:
    handle, count = _held.pop(path, (None, 0))
    if handle is None:
        return
    if count > 1:
        _held[path] = (handle, count - 1)
        return
    handle.seek(0)
    handle.truncate()
    fcntl.flock(handle, fcntl.LOCK_UN)
    handle.close()
