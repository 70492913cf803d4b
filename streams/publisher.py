"""Publishing a batch's outputs and its changelog record, and waiting for Kafka's acks.

One idempotent confluent-kafka producer per worker. `publish()` returns only when every
record is acknowledged, with the changelog record's offset; any delivery error raises
`DeliveryError` and the batch must not be committed. The broker checks a topic's
`max.message.bytes` against a whole record batch, so `batch_bytes` (librdkafka's
`batch.size`) keeps the records librdkafka groups for one partition below that limit too.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

from confluent_kafka import KafkaError, Message, Producer

from tokenops.settings import KafkaSettings
from tokenops.streams.errors import DeliveryError
from tokenops.streams.processors import OutputRecord


class BatchPublisher:
    def __init__(
        self, kafka: KafkaSettings, *, client_id: str, batch_bytes: int = 1_000_000
    ) -> None:
        self.producer = Producer(
            {
                **kafka.librdkafka(),
                "client.id": client_id,
                "enable.idempotence": True,
                "acks": "all",
                "linger.ms": 2,
                "compression.type": "lz4",
                "partitioner": "murmur2_random",
                "message.max.bytes": 16_000_000,
                "batch.size": batch_bytes,
                **_passthrough(kafka),
            }
        )

    def publish(
        self,
        outputs: Sequence[OutputRecord],
        changelog: Sequence[tuple[str, int, bytes, bytes]] = (),
        *,
        timeout_s: float = 60.0,
    ) -> list[int]:
        """Produce `outputs` and wait for their acks; THEN the changelog records.

        Two round trips on purpose: a changelog record must never be durable while an
        output it accounts for is not (a crash between would lose that output for good).
        Returns the offsets of the (topic, partition, key, value) changelog records.
        """
        errors: list[KafkaError] = []
        offsets = [-1] * len(changelog)

        def on_output(err: KafkaError | None, _msg: Message) -> None:
            if err is not None:
                errors.append(err)

        def on_changelog(i: int) -> Any:
            def done(err: KafkaError | None, msg: Message) -> None:
                if err is not None:
                    errors.append(err)
                else:
                    offsets[i] = cast(int, msg.offset())

            return done

        for out in outputs:
            self._produce(
                out.topic,
                out.value,
                out.key,
                out.partition,
                out.headers,
                on_output,
                out.timestamp_ms,
            )
        self._wait(errors, timeout_s)
        for i, (topic, partition, key, value) in enumerate(changelog):
            self._produce(topic, value, key, partition, None, on_changelog(i))
        self._wait(errors, timeout_s)
        return offsets

    def _produce(
        self,
        topic: str,
        value: bytes,
        key: bytes | None,
        partition: int | None,
        headers: list[tuple[str, bytes]] | None,
        callback: Any,
        timestamp_ms: int | None = None,
    ) -> None:
        extra: dict[str, Any] = {} if partition is None else {"partition": partition}
        if timestamp_ms is not None:
            extra["timestamp"] = timestamp_ms
        while True:
            try:
                self.producer.produce(
                    topic, value, key, headers=cast(Any, headers), on_delivery=callback, **extra
                )
                return
            except BufferError:
                self.producer.poll(0.05)

    def _wait(self, errors: list[KafkaError], timeout_s: float) -> None:
        remaining = self.producer.flush(timeout_s)
        if remaining or errors:
            detail = errors[0].str() if errors else f"{remaining} records unacknowledged"
            raise DeliveryError(
                f"Kafka did not acknowledge the batch: {detail}",
                hint="the worker stops; its state is unchanged and the batch is replayed",
            )

    def close(self) -> None:
        self.producer.flush(10)


def _passthrough(kafka: KafkaSettings) -> dict[str, Any]:
    return dict(kafka.client_config)
