"""Records on their way to the broker: produced, acknowledged, or spooled, never lost.

`RecordSender` owns librdkafka's side of `UsageProducer`: it hands records to the
client, keeps the ones the client's full queue refuses (in order, retried on every
poll), counts delivery reports, writes failures to the spool, resolves the records'
tickets (`tickets.py`: acknowledged, or spooled and fsynced), and replays the spool
files older producers left. Every method runs under the producer's lock; delivery
reports take that lock themselves, so librdkafka is polled without it.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable
from functools import partial
from pathlib import Path

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from tokenops.producers.errors import SpoolError
from tokenops.producers.metrics import ProducerMetrics
from tokenops.producers.signing import RecordSigner
from tokenops.producers.spool import Spool, SpooledRecord, read_entries, release
from tokenops.producers.tickets import Ticket, resolve_all
from tokenops.schemas import CONTENT_TYPE_HEADER

logger = logging.getLogger(__name__)

Delivered = Callable[[int, int], None]
# A record on its way: the spool file it replays, the callback of `send_raw`, its tickets.
Submitted = tuple[SpooledRecord, Path | None, Delivered | None, list[Ticket] | None]


class RecordSender:
    def __init__(
        self,
        client: Producer,
        topic: str,
        spool: Spool,
        metrics: ProducerMetrics,
        lock: threading.Lock,
        signer: RecordSigner | None = None,
    ) -> None:
        self.client = client
        self.signer = signer
        self.topic = topic
        self.spool = spool
        self.metrics = metrics
        self._lock = lock
        # records the client's full queue refused for now, with the spool file they replay
        self._pending: deque[Submitted] = deque()
        self.pending_events = 0
        self.in_flight = 0
        self._replaying: dict[Path, int] = {}

    @property
    def outstanding(self) -> int:
        return self.pending_events + self.in_flight

    def submit(
        self,
        record: SpooledRecord,
        replay_of: Path | None = None,
        done: Delivered | None = None,
        tickets: list[Ticket] | None = None,
    ) -> None:
        """Produce, or queue behind earlier refused records to keep a tenant's order."""
        if self._pending or not self._try(record, replay_of, done, tickets):
            self._pending.append((record, replay_of, done, tickets))
            self.pending_events += record.events

    def retry_pending(self) -> None:
        while self._pending:
            record, replay_of, done, tickets = self._pending[0]
            if not self._try(record, replay_of, done, tickets):
                return
            self._pending.popleft()
            self.pending_events -= record.events

    def spool_pending(self) -> None:
        """At close: what the client never took goes to the spool."""
        purged = KafkaError(KafkaError._PURGE_QUEUE)
        while self._pending:
            record, replay_of, _, tickets = self._pending.popleft()
            self._resolved(record, replay_of, purged, tickets)
        self.pending_events = 0

    def replay(self) -> None:
        """Produce what earlier producers spooled; each file goes once it is all resolved."""
        for path in self.spool.claim_older():
            records = list(read_entries(path))
            logger.info("replaying spool path=%s records=%d", path, len(records))
            if not records:
                release(path)
                continue
            self._replaying[path] = len(records)
            for record in records:
                self.submit(record, replay_of=path)

    def _try(
        self,
        record: SpooledRecord,
        replay_of: Path | None,
        done: Delivered | None,
        tickets: list[Ticket] | None,
    ) -> bool:
        try:
            self.client.produce(
                self.topic,
                record.value,
                record.key,
                headers=self._headers(record),
                on_delivery=partial(self._on_delivery, record, replay_of, done, tickets),
            )
        except BufferError:
            return False
        except KafkaException as exc:  # e.g. a fatal idempotence error: the client is done
            logger.error("produce failed error=%s; spooling the record", exc.args[0])
            self._resolved(record, replay_of, exc.args[0], tickets)
            return True
        self.in_flight += record.events
        return True

    def _headers(self, record: SpooledRecord) -> list[tuple[str, str | bytes | None]]:
        headers: list[tuple[str, str | bytes | None]] = [
            (CONTENT_TYPE_HEADER, record.content_type.encode())
        ]
        if self.signer is not None:
            headers += self.signer.headers(record)
        return headers

    def _on_delivery(
        self,
        record: SpooledRecord,
        replay_of: Path | None,
        done: Delivered | None,
        tickets: list[Ticket] | None,
        error: KafkaError | None,
        message: Message,
    ) -> None:
        """Runs in whichever thread polls: counts the outcome, spools a failure."""
        with self._lock:
            self.in_flight -= record.events
            self._resolved(record, replay_of, error, tickets)
        if done is not None and error is None:
            done(message.partition() or 0, message.offset() or 0)

    def _resolved(
        self,
        record: SpooledRecord,
        replay_of: Path | None,
        error: KafkaError | None,
        tickets: list[Ticket] | None = None,
    ) -> None:
        """Acknowledged (error None) or spooled; a replayed file goes once all resolved.
        Tickets learn it once it is durable: a spooled record after its fsync."""
        if error is None:
            self.metrics.sent.inc(record.events)
            if replay_of is not None:
                self.metrics.replayed.inc(record.events)
        else:
            name = error.name()
            self.metrics.failed.labels(name).inc(record.events)
            logger.warning("delivery failed error=%s events=%d; spooling", name, record.events)
            try:
                self.spool.append(record)
                if tickets:  # their callers are told it is durable: on disk first
                    self.spool.sync()
            except SpoolError as exc:
                resolve_all(tickets or (), exc)
                raise
            self.metrics.spooled.inc(record.events)
        if tickets:
            resolve_all(tickets, None)
        if replay_of is not None:
            self._replaying[replay_of] -= 1
            if self._replaying[replay_of] == 0:
                self.spool.sync()  # records that failed again are durable here first
                release(replay_of)
                del self._replaying[replay_of]
