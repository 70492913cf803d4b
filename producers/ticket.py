"""DeliveryTicket: when one caller's records are durable, without waiting for anyone else's.

`UsageProducer.send_columns(parts, ticket)` attaches the ticket to every record holding
those events; each record settles it once, when the broker acknowledged it (`acks=all`)
or it was written to the spool and fsynced. The ticket fires its callback once every
record settled, in whichever thread served the last delivery report (usually the
producer's poll thread), so a server answers each request on its own records'
acknowledgement instead of a flush of everything outstanding.
"""

from __future__ import annotations

import threading
from collections.abc import Callable


class DeliveryTicket:
    """Counts the unsettled records of one caller; `on_durable()` runs once, at zero."""

    __slots__ = ("_lock", "_on_durable", "_open")

    def __init__(self, on_durable: Callable[[], None]) -> None:
        self._lock = threading.Lock()
        # 1 = the hold of the `send_columns` still attaching records: a record the poll
        # thread settles meanwhile must not fire the ticket before the last is attached
        self._open = 1
        self._on_durable = on_durable

    def attach(self) -> None:
        with self._lock:
            self._open += 1

    def settle(self) -> None:
        """One record (or the attaching hold) settled; the last one fires the callback."""
        with self._lock:
            self._open -= 1
            fire = self._open == 0
        if fire:
            self._on_durable()
