"""Answering a request only once its own events are durable.

`DurableSender.send` hands a request's validated columns to the SDK's batcher with a
`DeliveryTicket` (`UsageProducer.send_columns`): the records holding them leave at once
and the ticket fires when the last of them is acknowledged by the broker (`acks=all`) or
spooled and fsynced, in the producer's poll thread, which wakes the request through
`loop.call_soon_threadsafe`. A request waits for its own records only, never for those of
requests that came before or after it, so many requests' acknowledgements overlap. One
that is not durable within `timeout_s` answers NotDurableError: the events stay queued
(delivered or spooled later, never dropped), and a client that retries with the same
`source` + `id` is counted once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from contextlib import suppress
from functools import partial

from tokenops.errors import TokenopsError
from tokenops.producers.producer import UsageProducer
from tokenops.producers.ticket import DeliveryTicket
from tokenops.schemas import EventColumns


class NotDurableError(TokenopsError):
    """The events were accepted but not confirmed durable in time; retrying is safe."""

    def __init__(self, timeout_s: float) -> None:
        super().__init__(
            f"events not confirmed durable within {timeout_s:g}s",
            hint="retry with the same source and id; they are counted once",
        )


class DurableSender:
    def __init__(self, producer: UsageProducer, timeout_s: float) -> None:
        self.producer = producer
        self.timeout_s = timeout_s

    async def send(self, parts: Sequence[EventColumns]) -> int:
        """Accept `parts` (all or none) and return once they are durable; raises
        ProducerBackpressureError (none accepted) or NotDurableError."""
        loop = asyncio.get_running_loop()
        # Each request has its own future, so a cancelled request (a client gone)
        # cancels only itself; the events it handed over are delivered all the same.
        durable: asyncio.Future[None] = loop.create_future()
        accepted = self.producer.send_columns(parts, DeliveryTicket(partial(_wake, loop, durable)))
        try:
            await asyncio.wait_for(durable, self.timeout_s)
        except TimeoutError:
            raise NotDurableError(self.timeout_s) from None
        return accepted


def _wake(loop: asyncio.AbstractEventLoop, durable: asyncio.Future[None]) -> None:
    """In the thread that served the last delivery report: resolve in the loop's thread."""
    with suppress(RuntimeError):  # the loop closed meanwhile (server shut down): nobody waits
        loop.call_soon_threadsafe(_resolve, durable)


def _resolve(durable: asyncio.Future[None]) -> None:
    if not durable.done():  # not cancelled with its request, nor timed out
        durable.set_result(None)
