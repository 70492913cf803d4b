"""UsageProducer: the SDK inference nodes embed to emit usage events without losing one.

    producer = UsageProducer.from_env(registry=registry)   # or UsageProducer(kafka, settings)
    producer.send(event)                 # a UsageEvent, or a mapping of its fields
    producer.send_many([fields, ...])    # validated column-wise, all or none accepted
    producer.send_columns([columns])     # decoded by decode_columns already (the HTTP API)
    producer.send_columns(parts, ticket) # ... and told when these are durable (tickets.py)
    producer.produce_buffered()          # every tenant's buffer to the client now
    producer.sync(timeout_s)             # True once all accepted so far are durable
    await producer.asend({...})          # the same from asyncio, waiting without blocking
    producer.close()                     # flush; what the broker did not take is spooled

Events are validated into columns and wait per tenant (`batcher.py`); a tenant's events
leave together as ONE v2 columnar batch record (`column_batch.py`), a lone event as a
plain CloudEvent, keyed by tenant so they stay ordered in its partition.

Guarantees: an invalid event raises `InvalidEventError` in `send` and is never sent. An
accepted event is acknowledged by the broker (`acks=all`, idempotent), or written to the
durable spool (delivery failed or timed out, or still undelivered at close), from which
the next producer on the same spool directory replays it; a replay may duplicate, which
`source` + `id` let consumers discard. When more than `max_outstanding_events` are
waiting, `send` blocks up to `backpressure_timeout_s`, then raises
`ProducerBackpressureError`: the event was not accepted, nothing was dropped.
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import signal
import threading
import time
import weakref
from collections.abc import Iterable, Mapping, Sequence
from itertools import repeat
from types import FrameType
from typing import Any

from confluent_kafka import Producer
from prometheus_client import CollectorRegistry

from tokenops.producers.batcher import TenantBatches, columns_record
from tokenops.producers.delivery import Delivered, RecordSender
from tokenops.producers.errors import ProducerBackpressureError, ProducerClosedError
from tokenops.producers.metrics import ProducerMetrics
from tokenops.producers.settings import ProducerSettings
from tokenops.producers.signing import record_signer
from tokenops.producers.spool import Spool, SpooledRecord
from tokenops.producers.tickets import Ticket
from tokenops.schemas import CLOUDEVENTS_CONTENT_TYPE, EventColumns, InvalidEventError, UsageEvent
from tokenops.schemas.columns import columns_many, event_row, fields_row, latest_ms
from tokenops.schemas.event import MIN_EVENT_TIME, to_epoch_ms
from tokenops.schemas.rules import Row, quick_row
from tokenops.settings import KafkaSettings, load

logger = logging.getLogger(__name__)
_EARLIEST_MS = to_epoch_ms(MIN_EVENT_TIME)
_SYNC_SLICE_S = 0.001  # one `sync` flush call; see sync()
# `send` settles its rows into the tenants' buffers at least this often: often enough
# that a settle is cheap next to the rows' validation, seldom enough to be amortized.
ROWS_PER_SETTLE = 1024
_librdkafka_logger = logging.getLogger("tokenops.producers.librdkafka")


class UsageProducer:
    """Validates, batches per tenant and produces usage events; thread-safe."""

    def __init__(
        self,
        kafka: KafkaSettings,
        settings: ProducerSettings,
        *,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.settings = settings
        self.topic = settings.topic
        self._max_outstanding = settings.max_outstanding_events
        signer = record_signer(settings)  # before any client: a bad key fails cleanly
        self._producer = Producer(
            {**kafka.librdkafka(), **settings.librdkafka(), "logger": _librdkafka_logger}
        )
        self._lock = threading.Lock()
        self._batches = TenantBatches(settings.batch_max_events, settings.linger_ms / 1000)
        self._rows: list[tuple[str, Row]] = []  # `send`'s valid events, not yet in `_batches`
        self._room = min(ROWS_PER_SETTLE, self._max_outstanding)  # rows before `_make_room`
        # The latest event time `send`'s quick check accepts, renewed on every settle and
        # poll rather than read from the clock per event. Being a little behind it only
        # sends an event at the very edge of the skew to the careful check, which reads
        # the clock and decides.
        self._latest_ms = latest_ms(settings.max_future_skew_s)
        self._closed = False
        self._released = False
        self._spool = Spool(settings.spool_dir)
        self.metrics = ProducerMetrics(registry or CollectorRegistry(), self.outstanding)
        self._sender = RecordSender(
            self._producer, self.topic, self._spool, self.metrics, self._lock, signer
        )
        with self._lock:
            self._sender.replay()
        self._stop = threading.Event()
        self._poller = threading.Thread(target=self._poll_loop, name="tokenops-producer")
        self._poller.daemon = True
        self._poller.start()
        atexit.register(_close_at_exit, weakref.ref(self))

    @classmethod
    def from_env(cls, *, registry: CollectorRegistry | None = None) -> UsageProducer:
        """A producer configured from `TOKENOPS_KAFKA_*` and `TOKENOPS_PRODUCER_*`: the one
        place the SDK reads the environment (every problem reported at once, by name)."""
        return cls(load(KafkaSettings), load(ProducerSettings), registry=registry)

    # -- sending ----------------------------------------------------------------------

    def send(self, event: UsageEvent | Mapping[str, Any]) -> None:
        """Accept one event (validated here if given as a mapping of fields).

        A valid event without attributes joins `_rows` without taking the lock: one list
        append, the per-event cost kept to validation. Every `_room` events (at most
        `ROWS_PER_SETTLE`, fewer near `max_outstanding_events`) the rows move into the
        tenants' buffers in bulk (`_make_room`), as they do on every poll, flush and
        before any other way in, so a tenant's events keep their order.
        """
        pair = None
        if event.__class__ is dict:  # the common case first, without detours
            try:
                pair = quick_row(event, _EARLIEST_MS, self._latest_ms)
            except (TypeError, AttributeError, ValueError):  # an unhashable value
                pair = None
        if pair is None:
            tenant, row, attributes = self._validated(event)
            if attributes:
                if self.outstanding() >= self._max_outstanding:
                    self._wait_for_room()
                self._accept(tenant, row, attributes)
                return
            pair = (tenant, row)
        rows = self._rows
        if len(rows) >= self._room:
            self._make_room()  # raises ProducerBackpressureError: this event not accepted
        rows.append(pair)
        if self._closed:  # close() may have taken its last rows before this one came
            self._withdraw(pair)

    def send_many(self, events: Iterable[UsageEvent | Mapping[str, Any]]) -> int:
        """Accept several events at once; all are validated before any is accepted.

        Faster per event than `send`: one lock, one settle and one backpressure check
        for the lot. Raises the first invalid event's `InvalidEventError` (with its
        `index`) and then accepts none of them. Returns how many were accepted.
        """
        items = list(events)
        n = len(items)
        try:  # the common events: `send`'s quick check, called from C
            pairs: list[Any] | None = list(
                map(quick_row, items, repeat(_EARLIEST_MS, n), repeat(self._latest_ms, n))
            )
        except (TypeError, AttributeError, ValueError):  # an unhashable value
            pairs = None
        parts: list[EventColumns] = []
        if pairs is None or not all(pairs):  # the careful way: columns, errors named
            pairs = None
            try:
                parts = columns_many(items, max_future_skew_s=self.settings.max_future_skew_s)
            except InvalidEventError:
                self.metrics.rejected.inc()
                raise
        self._accept_many(pairs or [], parts)
        return n

    def send_columns(
        self,
        parts: Sequence[EventColumns],
        ticket: Ticket | None = None,
        encoded: bytes | None = None,
    ) -> int:
        """Accept events already validated into columns (by `decode_columns`): all parts
        or none. Raises `ProducerBackpressureError` (none accepted) when the queue stays
        full for `backpressure_timeout_s`. Returns how many events were accepted.

        With a `ticket`, its `on_durable` runs once every record holding any of these
        events is acknowledged (`acks=all`) or fsynced in the spool (`tickets.py`); the
        records still wait for their batch like any others (`produce_buffered`).
        `encoded`: for one event, the CloudEvent bytes `decode_columns` accepted as it; a
        record holding that event alone carries them as they are, not encoded again."""
        self._accept_many([], parts, ticket, encoded)
        return sum(len(part) for part in parts)

    def _accept_many(
        self,
        pairs: list[tuple[str, Row]],
        parts: Sequence[EventColumns],
        ticket: Ticket | None = None,
        encoded: bytes | None = None,
    ) -> None:
        """Checked rows and column parts into the tenants' batches, once there is room."""
        if self.outstanding() >= self._max_outstanding:
            self._wait_for_room()
        with self._lock:
            if self._closed:
                raise ProducerClosedError()
            self._settle_rows()
            done = self._batches.add_rows(pairs) if pairs else []
            for part in parts:
                done += self._batches.extend(part, ticket, encoded)
            for full in done:
                self._produce(full)

    def _accept(self, tenant: str, row: Row, attributes: dict[str, str]) -> None:
        with self._lock:
            if self._closed:
                raise ProducerClosedError()
            self._settle_rows()
            full = self._batches.add(tenant, row, attributes)
            if full is not None:
                self._produce(full)

    async def asend(self, event: UsageEvent | Mapping[str, Any]) -> None:
        """`send` for asyncio: waits for room with `asyncio.sleep`, never blocking the loop."""
        tenant, row, attributes = self._validated(event)
        if len(self._rows) >= self._room or self.outstanding() >= self._max_outstanding:
            self._settle_open_rows()
            deadline = time.monotonic() + self.settings.backpressure_timeout_s
            while self.outstanding() >= self._max_outstanding:
                if time.monotonic() >= deadline:
                    raise self._backpressure_error()
                await asyncio.sleep(0.005)
            self._resize_room()
        if attributes:
            self._accept(tenant, row, attributes)
            return
        pair = (tenant, row)  # then as in `send`: no lock per event
        self._rows.append(pair)
        if self._closed:
            self._withdraw(pair)

    def send_raw(
        self,
        value: bytes,
        key: bytes | None,
        content_type: str,
        on_delivered: Delivered | None = None,
    ) -> None:
        """Produce bytes as they are, unvalidated: for fault injection and tests only.

        Delivery is as safe as `send` (spooled on failure); `on_delivered(partition,
        offset)` runs once the broker acknowledged the record.
        """
        with self._lock:
            if self._closed:
                raise ProducerClosedError()
            self._sender.submit(
                SpooledRecord(0, key or b"", content_type, value), None, on_delivered
            )

    def outstanding(self) -> int:
        """Events accepted and neither acknowledged nor spooled yet."""
        return len(self._rows) + self._batches.buffered + self._sender.outstanding

    def flush(self, timeout_s: float | None = None) -> int:
        """Send every buffered event and wait for acknowledgements; returns those left."""
        if self._released:
            return self.outstanding()
        with self._lock:
            self._settle_rows()
            for batch in self._batches.drain():
                self._produce(batch)
            self._sender.retry_pending()
        self._producer.flush(self.settings.close_timeout_s if timeout_s is None else timeout_s)
        self._spool.sync()
        return self.outstanding()

    def sync(self, timeout_s: float) -> bool:
        """True once every event accepted before the call is acknowledged by the broker
        (`acks=all`) or fsynced in the spool; False if that took longer than `timeout_s`
        (the events stay queued and are delivered or spooled later, never dropped).

        Unlike `flush`, the answer does not depend on events other threads accept
        meanwhile, so a server can tell each request whether its events are durable.
        """
        deadline = time.monotonic() + timeout_s
        self.produce_buffered()
        while True:
            # Short flushes: the poll thread may serve the delivery report this flush
            # waits for, and librdkafka's flush then sleeps out up to 10 ms per call.
            left = self._producer.flush(min(_SYNC_SLICE_S, max(0.0, deadline - time.monotonic())))
            with self._lock:
                self._sender.retry_pending()
                pending = self._sender.pending_events
            if left == 0 and pending == 0:
                break
            if time.monotonic() >= deadline:
                return False
        self._spool.sync()
        return True

    def produce_buffered(self) -> None:
        """Hand every tenant's buffered events to the client now, not at the linger's end:
        a caller that waits for them (a `sync`, a ticket) does not wait for more."""
        with self._lock:
            if self._closed:
                raise ProducerClosedError()
            self._settle_rows()
            for batch in self._batches.drain():
                self._produce(batch)
            self._sender.retry_pending()

    async def aflush(self, timeout_s: float | None = None) -> int:
        return await asyncio.to_thread(self.flush, timeout_s)

    def close(self, timeout_s: float | None = None) -> None:
        """Flush, then spool whatever the broker has not acknowledged; idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._stop.set()
        if self._poller is not threading.current_thread():
            self._poller.join()
        left = self.flush(timeout_s)
        if left:
            logger.warning("producer closing with undelivered events=%d; spooling them", left)
            self._producer.purge(in_queue=True, in_flight=True)
            self._producer.flush(5.0)  # serves the purge reports, which spool the records
            with self._lock:
                self._sender.spool_pending()
        self._spool.close()
        self._released = True
        self._producer.close()  # drops the broker connections now, not at garbage collection

    async def aclose(self, timeout_s: float | None = None) -> None:
        await asyncio.to_thread(self.close, timeout_s)

    def install_sigterm_handler(self) -> None:
        """On SIGTERM: close (flush, spool the rest), then the previous handler or exit 143."""
        previous = signal.getsignal(signal.SIGTERM)

        def on_sigterm(signum: int, frame: FrameType | None) -> None:
            self.close()
            if callable(previous):
                previous(signum, frame)
            else:
                raise SystemExit(128 + signum)

        signal.signal(signal.SIGTERM, on_sigterm)

    def __enter__(self) -> UsageProducer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> UsageProducer:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # -- internals --------------------------------------------------------------------

    def _validated(self, event: UsageEvent | Mapping[str, Any]) -> tuple[str, Row, dict[str, str]]:
        """(tenant, row, attributes) of one event; a mapping is validated here, at the
        call site."""
        if isinstance(event, UsageEvent):
            return event_row(event)
        try:
            return fields_row(event, _EARLIEST_MS, latest_ms(self.settings.max_future_skew_s))
        except InvalidEventError:
            self.metrics.rejected.inc()
            raise

    def _backpressure_error(self) -> ProducerBackpressureError:
        limit = self.settings.max_outstanding_events
        return ProducerBackpressureError(
            self.outstanding(), limit, self.settings.backpressure_timeout_s
        )

    def _wait_for_room(self) -> None:
        deadline = time.monotonic() + self.settings.backpressure_timeout_s
        while self.outstanding() >= self.settings.max_outstanding_events:
            if time.monotonic() >= deadline:
                raise self._backpressure_error()
            time.sleep(0.005)

    def _settle_rows(self) -> None:
        """Move the rows `send` collected into the tenants' buffers (lock held)."""
        rows = self._rows
        if rows:
            taken = rows.copy()  # sends in other threads may append meanwhile: keep those
            del rows[: len(taken)]
            for full in self._batches.add_rows(taken):
                self._produce(full)

    def _settle_open_rows(self) -> None:
        """`_settle_rows` under the lock; ProducerClosedError once closed."""
        with self._lock:
            if self._closed:
                raise ProducerClosedError()
            self._settle_rows()

    def _make_room(self) -> None:
        """Settle the rows, then wait until the next `_room` events fit under
        `max_outstanding_events`; raises `ProducerBackpressureError` at the timeout."""
        self._settle_open_rows()
        if self.outstanding() >= self._max_outstanding:
            self._wait_for_room()
        self._resize_room()

    def _resize_room(self) -> None:
        """After a settle: how many rows `send` may add before the next one."""
        self._latest_ms = latest_ms(self.settings.max_future_skew_s)
        room = self._max_outstanding - self.outstanding()
        self._room = len(self._rows) + max(1, min(ROWS_PER_SETTLE, room))

    def _withdraw(self, pair: tuple[str, Row]) -> None:
        """After close: an event still among the rows was never taken, so it is not
        accepted (removed, ProducerClosedError); one close took was accepted."""
        with self._lock:
            for at, waiting in enumerate(self._rows):
                if waiting is pair:
                    del self._rows[at]
                    raise ProducerClosedError()

    def _produce(self, columns: EventColumns) -> None:
        """Hand one tenant's buffered events to librdkafka as one record (lock held)."""
        signer = self._sender.signer
        signature = None if signer is None else signer.sign(columns)  # before encoding
        tickets, encoded = self._batches.taken(columns)
        if encoded is None:
            content_type, value = columns_record(columns)
        else:  # the caller's bytes of its lone event, which decode to these columns
            content_type, value = CLOUDEVENTS_CONTENT_TYPE, encoded
        record = SpooledRecord(
            len(columns), columns.tenant_id.encode(), content_type, value, signature
        )
        self._sender.submit(record, tickets=tickets)

    def _poll_loop(self) -> None:
        """Serves delivery reports and lingering batches until close; never dies quietly."""
        tick = max(0.001, min(0.05, self.settings.linger_ms / 2000))
        while not self._stop.is_set():
            try:
                self._producer.poll(tick)
                self._latest_ms = latest_ms(self.settings.max_future_skew_s)
                with self._lock:
                    self._settle_rows()
                    for batch in self._batches.stale():
                        self._produce(batch)
                    self._sender.retry_pending()
                    self._spool.sync()
            except Exception:  # a bug or a full disk: log it loudly, keep delivering
                logger.exception("producer poll loop error; retrying")
                time.sleep(0.5)


def _close_at_exit(ref: weakref.ref[UsageProducer]) -> None:
    """A producer nobody closed still flushes (or spools) at interpreter exit."""
    producer = ref()
    if producer is not None:
        producer.close()
