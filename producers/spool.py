"""The durable local spool: records the broker did not take, kept until the next start.

Each producer appends to its own file `spool-<pid>-<random>.log` in the spool directory;
an entry is `MAGIC | length | crc32 | payload` (big-endian u32s) where the payload is
`u32 event count | u32 key length | key | u16 content-type length | content-type | value`. A torn or
corrupt tail (a crash mid-write) is detected by length and checksum and skipped with a
warning; entries before it are kept. A starting producer claims older files by renaming
them to `*.replaying` (atomic, so two producers never replay the same file) and deletes a
file once every record in it is delivered or spooled again.
"""

from __future__ import annotations

import logging
import os
import struct
import uuid
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tokenops.producers.errors import SpoolError

logger = logging.getLogger(__name__)

MAGIC = b"TKS1"
_HEADER = struct.Struct(">4sII")
_KEY_LEN = struct.Struct(">I")
_CT_LEN = struct.Struct(">H")


@dataclass(frozen=True)
class SpooledRecord:
    events: int
    key: bytes
    content_type: str
    value: bytes
    # the signature header, computed from the columns before they were encoded; not
    # spooled: a replayed record is signed again from its value (`RecordSigner.headers`)
    signature: bytes | None = field(default=None, compare=False)


def encode_entry(record: SpooledRecord) -> bytes:
    content_type = record.content_type.encode()
    payload = b"".join(
        (
            _KEY_LEN.pack(record.events),
            _KEY_LEN.pack(len(record.key)),
            record.key,
            _CT_LEN.pack(len(content_type)),
            content_type,
            record.value,
        )
    )
    return _HEADER.pack(MAGIC, len(payload), zlib.crc32(payload)) + payload


def read_entries(path: Path) -> Iterator[SpooledRecord]:
    """The intact entries of a spool file, in order; stops at a torn or corrupt entry."""
    data = path.read_bytes()
    offset = 0
    while offset < len(data):
        if len(data) - offset < _HEADER.size:
            logger.warning("spool torn tail path=%s offset=%d", path, offset)
            return
        magic, length, checksum = _HEADER.unpack_from(data, offset)
        payload = data[offset + _HEADER.size : offset + _HEADER.size + length]
        if magic != MAGIC or len(payload) != length or zlib.crc32(payload) != checksum:
            logger.warning("spool corrupt entry path=%s offset=%d; rest skipped", path, offset)
            return
        events, key_len = _KEY_LEN.unpack_from(payload, 0)[0], _KEY_LEN.unpack_from(payload, 4)[0]
        key = payload[8 : 8 + key_len]
        ct_len = _CT_LEN.unpack_from(payload, 8 + key_len)[0]
        start = 10 + key_len
        content_type = payload[start : start + ct_len].decode()
        yield SpooledRecord(events, key, content_type, payload[start + ct_len :])
        offset += _HEADER.size + length


class Spool:
    """This producer's append-only spool file, created on the first append."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.path = directory / f"spool-{os.getpid()}-{uuid.uuid4().hex[:8]}.log"
        self._fd: int | None = None
        self._dirty = False

    def append(self, record: SpooledRecord) -> None:
        """Write one record (to the OS); `sync()` makes it durable."""
        try:
            if self._fd is None:
                self.directory.mkdir(parents=True, exist_ok=True)
                self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
                _active_here.add(self.path)
            os.write(self._fd, encode_entry(record))
        except OSError as exc:
            raise SpoolError(self.path, exc.strerror or str(exc)) from exc
        self._dirty = True

    def sync(self) -> None:
        if self._fd is not None and self._dirty:
            try:
                os.fsync(self._fd)
            except OSError as exc:
                raise SpoolError(self.path, exc.strerror or str(exc)) from exc
            self._dirty = False

    def close(self) -> None:
        self.sync()
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        _active_here.discard(self.path)

    def claim_older(self) -> list[Path]:
        """Spool files left by earlier producers, renamed so nobody else replays them.

        Files of running producers are left alone (the pid is in the name); a
        `*.replaying` file whose owner died mid-replay is claimed again.
        """
        if not self.directory.is_dir():
            return []
        claimed = []
        for path in sorted(self.directory.glob("spool-*")):
            if path == self.path or path.suffix not in (".log", ".replaying"):
                continue
            if _owner_alive(path):  # still written, or replayed, by a running producer
                continue
            target = self.directory / f"{path.name.split('.')[0]}.{os.getpid()}.replaying"
            try:
                path.rename(target)
            except FileNotFoundError:  # another producer claimed it first
                continue
            _claimed_here.add(target)
            claimed.append(target)
        return claimed


def release(path: Path) -> None:
    """Delete a replayed spool file once every record in it is resolved."""
    path.unlink(missing_ok=True)
    _claimed_here.discard(path)


# Files this process writes or replays: another producer in the same process leaves them be.
_claimed_here: set[Path] = set()
_active_here: set[Path] = set()


def _owner_alive(path: Path) -> bool:
    """Whether the producer that writes `spool-<pid>-x.log`, or replays
    `spool-<pid>-x.<pid>.replaying`, still runs."""
    try:
        if path.suffix == ".replaying":
            pid = int(path.name.split(".")[-2])
        else:
            pid = int(path.name.split("-")[1])
    except (IndexError, ValueError):
        return False
    if pid == os.getpid():
        return path in _claimed_here or path in _active_here
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
