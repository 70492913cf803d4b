"""Tickets: telling one caller when ITS events are durable, not when everything is.

`UsageProducer.send_columns(parts, ticket)` hangs the ticket on every tenant buffer that
takes some of the parts' events; each record made from such a buffer carries it, and
the record's delivery report (or the fsync of the spool it fell back to) resolves it.
When the last of its records is resolved, `on_durable(None)` runs, or
`on_durable(error)` if a record could be neither acknowledged nor spooled durably.

So a caller waits for its own records only: not for a `sync` of everything accepted
so far (the events of requests that came later included), and not for a round to end
before its own can start. The counts change under the producer's lock; `on_durable`
runs in the thread that resolved the last record (the producer's poll thread,
usually, or `close`), so it must hand over to its own thread (`call_soon_threadsafe`)
and must not raise: it runs inside a delivery report, under the producer's lock.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

Durable = Callable[[BaseException | None], None]


class Ticket:
    __slots__ = ("error", "on_durable", "records")

    def __init__(self, on_durable: Durable) -> None:
        self.on_durable = on_durable
        self.records = 0  # records holding some of its events, not yet resolved
        self.error: BaseException | None = None

    def resolved(self, error: BaseException | None) -> None:
        """One of its records is acknowledged or fsynced (None), or lost (`error`)."""
        if error is not None and self.error is None:
            self.error = error
        self.records -= 1
        if self.records == 0:
            self.on_durable(self.error)


def resolve_all(tickets: Iterable[Ticket], error: BaseException | None) -> None:
    for ticket in tickets:
        ticket.resolved(error)
