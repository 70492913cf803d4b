"""The Faust application of `tokenops worker`: whole fetches as batches, rebalance hooks.

Faust provides the consumer group (assignment, rebalances, heartbeats) and the fetching;
its consumer hands each batch of fetched records straight to the worker
(`batch_consumer.py`), bypassing Faust's per-message stream path. Windows, dedup and
state are ours (`worker.py`). Faust's windowed tables, `on_window_close` and
`exactly_once` are not used (design brief, section 1).

Rebalance: Faust revokes every partition first (eager protocol); our revoke hook waits
for the batch in flight (the worker's lock), then drops those partitions' state. When the
rebalance completes, we recover the assigned partitions and COMMIT each one's state
offset, which is what Faust seeks to right after (`Recovery._resume_streams`).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from typing import Any, cast

import faust
from prometheus_client import CollectorRegistry

from tokenops.errors import TokenopsError
from tokenops.settings import KafkaSettings, TopicSettings
from tokenops.streams.batch_consumer import BatchApp, BatchWiring
from tokenops.streams.credentials import broker_credentials
from tokenops.streams.metrics import WorkerMetrics
from tokenops.streams.partition import Decoder, InputRecord
from tokenops.streams.processors import ProcessorFactory
from tokenops.streams.settings import WorkerSettings
from tokenops.streams.worker import StreamWorker

logger = logging.getLogger(__name__)


def create_app(
    settings: WorkerSettings,
    kafka: KafkaSettings,
    topics: TopicSettings,
    registry: CollectorRegistry,
    decode: Decoder,
    processors: Sequence[ProcessorFactory] = (),
    *,
    progress_every_s: float,
) -> tuple[faust.App, StreamWorker]:
    datadir = settings.state_dir / "faust"
    datadir.mkdir(parents=True, exist_ok=True)  # Faust makes only its last level
    app = BatchApp(
        settings.app_id,
        broker=[f"kafka://{server}" for server in kafka.bootstrap_servers.split(",")],
        broker_credentials=broker_credentials(kafka),  # the same TLS/SASL as librdkafka
        store="memory://",
        # Faust makes `<datadir>/v1/tables` when the app starts, by default in the
        # working directory (`<app id>-data`); keep it with the worker's own state.
        # Braces are escaped: Faust formats the path with its settings.
        datadir=str(datadir).replace("{", "{{").replace("}", "}}"),
        web_enabled=False,
        topic_allow_declare=False,
        topic_disable_leader=True,
        consumer_auto_offset_reset="earliest",
        broker_session_timeout=settings.session_timeout_s,
        # static membership: a restarted worker gets its partitions back without
        # waiting out the session of the process it replaces (docs/streams.md)
        consumer_group_instance_id=settings.static_member_id,
        broker_heartbeat_interval=settings.heartbeat_interval_s,
        broker_commit_interval=2.0,
        stream_buffer_maxsize=max(4096, settings.batch_max_records * 2),
        # a fetch is at most 500 records, so a batch passes its byte cap by one fetch at most
        broker_max_poll_records=min(500, settings.batch_max_records),
        consumer_max_fetch_size=16 * 1024 * 1024,
        stream_wait_empty=False,
    )
    metrics = WorkerMetrics(registry)
    worker = StreamWorker(settings, kafka, topics, metrics, decode, processors)
    topic = app.topic(
        topics.usage, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw"
    )
    usage = topics.usage
    # Fetched records go to the worker whole (`batch_consumer.py`): Faust's per-message
    # path cost more CPU than the worker's own batch path. The agent below subscribes
    # the topic, and would only receive records if the consumer were not wired.
    app.batches = BatchWiring(
        topic=usage,
        handle=lambda batch: _or_die(worker.handle(batch)),
        positions=lambda: {p: s.next_offset for p, s in worker.states.items()},
        max_records=settings.batch_max_records,
        max_bytes=settings.batch_max_bytes,
        within_s=settings.batch_within_s,
        commit_interval_s=2.0,
    )

    @app.agent(topic, name="aggregate")
    async def aggregate(stream: Any) -> None:
        async for events in stream.take_events(
            settings.batch_max_records, within=settings.batch_within_s
        ):
            grouped: dict[int, list[InputRecord]] = {}
            for event in events:
                m = event.message
                grouped.setdefault(m.partition, []).append(
                    InputRecord(
                        m.offset,
                        m.key,
                        m.value,
                        m.headers,
                        int(m.timestamp * 1000),
                        m.timestamp_type,
                    )
                )
            await _or_die(worker.handle(grouped))

    async def on_revoked(sender: Any, revoked: set[Any], **kwargs: Any) -> None:
        worker.ready.clear()
        await _or_die(worker.revoke({tp.partition for tp in revoked if tp.topic == usage}))

    async def on_rebalance_complete(sender: Any, **kwargs: Any) -> None:
        assigned = {tp for tp in app.consumer.assignment() if tp.topic == usage}
        mine = {tp.partition for tp in assigned}
        await _or_die(worker.revoke(set(worker.states) - mine))
        offsets = await _or_die(worker.assign(mine))
        commit = {tp: offsets[tp.partition] for tp in assigned}
        consumer: Any = app.consumer  # `_commit` commits exact offsets (the public one: acked)
        if commit and not await consumer._commit(commit):
            logger.warning("could not commit the state offsets; records below are skipped")
        worker.ready.set()
        logger.info("assigned partitions=%s offsets=%s", sorted(mine), offsets)

    # faust's signal types want a `signal` keyword; it arrives in **kwargs
    app.on_partitions_revoked.connect(cast(Any, on_revoked))
    app.on_rebalance_complete.connect(cast(Any, on_rebalance_complete))

    async def on_shutdown(sender: Any, **kwargs: Any) -> None:
        await worker.close()

    app.on_before_shutdown.connect(cast(Any, on_shutdown))

    async def idle() -> None:
        await _or_die(worker.idle_tick())

    async def report() -> None:
        logger.info("worker %s", metrics.summary())

    timer: Any = app.timer
    timer(interval=max(0.2, min(settings.idle_timeout_s / 4, 5.0)))(idle)
    timer(interval=progress_every_s)(report)

    return app, worker


async def _or_die(step: Any) -> Any:
    """Run one step of the worker; any failure ends the process at once.

    The state on disk and in the changelog is only ever a whole batch ahead or behind, so
    the safe reaction to anything unexpected is to stop and let the restart replay. A
    graceful Faust shutdown could commit offsets of a batch that never became durable.
    """
    try:
        return await step
    except TokenopsError as exc:  # a refusal meant for a person: one line, no traceback
        logger.critical("worker stopped: %s", exc)
        logging.shutdown()
        time.sleep(0.1)
        os._exit(70)
    except Exception:
        logger.critical("worker step failed, exiting to replay from durable state", exc_info=True)
        logging.shutdown()
        time.sleep(0.1)
        os._exit(70)
