"""Answering a request only once its events are durable, with one flush for many requests.

`DurableSender.send` hands a request's validated columns to the SDK's batcher
(`UsageProducer.send_columns`), then joins the next durability round: one
`UsageProducer.sync` in a worker thread covers every request that joined before it
started (group commit), so concurrent requests share the broker's acknowledgement
instead of each waiting for its own. A round that does not finish within `timeout_s`
answers NotDurableError: the events stay queued (delivered or spooled later, never
dropped), and a client that retries with the same `source` + `id` is counted once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from tokenops.errors import TokenopsError
from tokenops.producers.producer import UsageProducer
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
        # The futures of the requests waiting for the next round. Each request has its
        # own, so a cancelled request (a client gone) cancels only itself; one per
        # request is cheaper than `asyncio.shield` around a shared round future.
        self._waiting: list[asyncio.Future[bool]] = []
        self._flushing = False
        self._rounds: asyncio.Task[None] | None = None  # held: the loop keeps tasks weakly

    async def send(self, parts: Sequence[EventColumns]) -> int:
        """Accept `parts` (all or none) and return once they are durable; raises
        ProducerBackpressureError (none accepted) or NotDurableError."""
        accepted = self.producer.send_columns(parts)
        if not await self._durable():
            raise NotDurableError(self.timeout_s)
        return accepted

    def _durable(self) -> asyncio.Future[bool]:
        loop = asyncio.get_running_loop()
        waiter = loop.create_future()
        self._waiting.append(waiter)
        if not self._flushing:
            self._flushing = True
            self._rounds = loop.create_task(self._flush_rounds())
        return waiter

    async def _flush_rounds(self) -> None:
        """Runs rounds while requests wait; each round covers those that joined before it."""
        loop = asyncio.get_running_loop()
        try:
            while self._waiting:
                round_, self._waiting = self._waiting, []
                try:
                    ok = await loop.run_in_executor(None, self.producer.sync, self.timeout_s)
                except Exception as exc:  # closed producer, spool error: the waiters see it
                    for waiter in round_:
                        if not waiter.done():
                            waiter.set_exception(exc)
                else:
                    for waiter in round_:
                        if not waiter.done():  # not cancelled with its request
                            waiter.set_result(ok)
        finally:
            self._flushing = False
