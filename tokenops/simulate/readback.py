"""Read a usage topic back from the beginning: what the broker holds, decoded.

For tests, the simulator's `--verify` and the demo: every record is decoded with the
contract's `decode_record`; records it rejects are kept as raw bytes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tokenops.schemas import InvalidEventError, UsageEvent, decode_record
from tokenops.settings import KafkaSettings
from tokenops.topics import read_to_end


@dataclass
class TopicContents:
    events: list[UsageEvent] = field(default_factory=list)
    invalid: list[bytes] = field(default_factory=list)  # values decode_record rejected
    records: int = 0


def read_topic(kafka: KafkaSettings, topic: str, *, timeout_s: float = 60.0) -> TopicContents:
    """Every record up to the end offsets seen when the call starts, decoded."""
    contents = TopicContents()
    for message in read_to_end(kafka, topic, timeout_s=timeout_s):
        contents.records += 1
        value = message.value() or b""
        try:
            contents.events.extend(decode_record(value, message.headers()))  # type: ignore[arg-type]
        except InvalidEventError:
            contents.invalid.append(value)
    return contents
