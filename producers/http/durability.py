"""Answering a request only once its events are durable, waiting for its own records only.

`DurableSender.send` hands a request's validated columns to the SDK's batcher with a
ticket (`UsageProducer.send_columns`, `producers/tickets.py`): the request is answered
when every record holding its events is acknowledged by the broker (`acks=all`) or
fsynced in the spool. Requests handled in the same turn of the event loop share their
tenants' records: the first schedules one `produce_buffered` at the end of the turn
(group commit), which hands the tenants' buffers to librdkafka at once; librdkafka
gathers the records that arrive while its earlier requests are in flight into its next
request (`linger.ms`, kept short by the server). So a request waits for the broker's
round trip of its own records, not for a `sync` of everything accepted before it.

A request not confirmed within `timeout_s` gets NotDurableError: its events stay
queued (delivered or spooled later, never dropped), and a client that retries with the
same `source` + `id` is counted once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from contextlib import suppress

from tokenops.errors import TokenopsError
from tokenops.producers.errors import ProducerClosedError
from tokenops.producers.producer import UsageProducer
from tokenops.producers.tickets import Ticket
from tokenops.schemas import EventColumns


class NotDurableError(TokenopsError):
    """The events were accepted but not confirmed durable in time; retrying is safe."""

    def __init__(self, timeout_s: float) -> None:
        super().__init__(
            f"events not confirmed durable within {timeout_s:g}s",
            hint="retry with the same source and id; they are counted once",
        )


_TIMED_OUT = object()  # what a request's timer sets: NotDurableError, built if it fires


class DurableSender:
    def __init__(self, producer: UsageProducer, timeout_s: float) -> None:
        self.producer = producer
        self.timeout_s = timeout_s
        self._release_scheduled = False

    async def send(self, parts: Sequence[EventColumns], encoded: bytes | None = None) -> int:
        """Accept `parts` (all or none; `encoded`: see `UsageProducer.send_columns`) and
        return once they are durable; raises
        ProducerBackpressureError (none accepted), NotDurableError, or the ProducerError
        that kept them from the broker and the spool."""
        loop = asyncio.get_running_loop()
        # Each request has its own future, so a cancelled request (a client gone)
        # cancels only itself.
        waiter: asyncio.Future[object] = loop.create_future()

        def on_durable(error: BaseException | None) -> None:  # in the producer's thread
            # Must not raise (it runs inside a delivery report): a loop already closed
            # (the server stopped; `close` delivers what is left) has nobody waiting.
            with suppress(RuntimeError):
                loop.call_soon_threadsafe(_settle, waiter, error)

        ticket = Ticket(on_durable)
        accepted = self.producer.send_columns(parts, ticket, encoded)
        if not self._release_scheduled:
            self._release_scheduled = True
            loop.call_soon(self._release)
        timer = loop.call_later(self.timeout_s, _settle, waiter, _TIMED_OUT)
        try:
            outcome = await waiter
        finally:
            timer.cancel()
        if outcome is _TIMED_OUT:
            raise NotDurableError(self.timeout_s)
        if isinstance(outcome, BaseException):  # the ticket's: neither acked nor spooled
            raise outcome
        return accepted

    def _release(self) -> None:
        """End of the loop's turn: the buffers the turn's requests filled go to the client."""
        self._release_scheduled = False
        # A closed producer: close() produces or spools the buffers, tickets with them.
        with suppress(ProducerClosedError):
            self.producer.produce_buffered()


def _settle(waiter: asyncio.Future[object], outcome: object) -> None:
    if not waiter.done():  # not cancelled with its request, nor timed out
        waiter.set_result(outcome)
