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
        self._next: asyncio.Future[bool] | None = None
        self._flushing = False

    async def send(self, parts: Sequence[EventColumns]) -> int:
        """Accept `parts` (all or none) and return once they are durable; raises
        ProducerBackpressureError (none accepted) or NotDurableError."""
        accepted = self.producer.send_columns(parts)
        if not await self._durable():
            raise NotDurableError(self.timeout_s)
        return accepted

    async def _durable(self) -> bool:
        if self._next is None:
            self._next = asyncio.get_running_loop().create_future()
        round_ = self._next
        if not self._flushing:
            self._flushing = True
            asyncio.get_running_loop().create_task(self._flush_rounds())
        return await asyncio.shield(round_)

    async def _flush_rounds(self) -> None:
        """Runs rounds while requests wait; each round covers those that joined before it."""
        try:
            while self._next is not None:
                round_, self._next = self._next, None
                try:
                    ok = await asyncio.to_thread(self.producer.sync, self.timeout_s)
                except Exception as exc:  # closed producer, spool error: the waiters see it
                    round_.set_exception(exc)
                else:
                    round_.set_result(ok)
        finally:
            self._flushing = False
