"""Where a usage record is counted, and the clock its event times are judged by.

Three rules of one input partition, kept apart from the counting (`partition.py`):

- **Home or forward.** A tenant's events are counted only in its home partition
  (`tokenops.placement.home_partition`). A valid record that arrived anywhere else (an
  explicit partition, no key, librdkafka's default `consistent_random` partitioner) is
  not counted there: `RecordRouter.forward` turns it into an output to the usage topic's
  home partition, same value bytes and headers, key = tenant. Outputs are acknowledged
  before the batch's state is durable, so a crash may forward a record twice; the home
  partition deduplicates its events (`source` + `id`) like any resend. A keyed record
  away from its key's home is forwarded without being decoded (`forward_keyed`): a valid
  record's key is its tenant, so it would go there anyway, and an invalid one is
  dead-lettered at that home with its reason (the contract's key rule, `check_key`).
  That spares the decode of most records sent with librdkafka's default partitioner.
- **Bundles.** The keyed away records of one batch that carry no header but the
  CloudEvents content type (or none) go home as ONE record per home partition, a bundle
  (`wire.encode_bundle`): their bytes joined, their keys, positions and event clocks in a
  header. At home each element is judged as a record of its own (`partition.py`), by
  the clock in the header capped by the bundle's own event clock, so a forged header can
  only make an element's clock earlier; its dead letter names where it was written.
  Anything else (other headers: signatures, binary-mode CloudEvents, SDK batches) is
  forwarded record by record as before.
- **The event clock.** Producers set a record's Kafka timestamp (Kafka accepts up to an
  hour ahead by default, any time if the topic allows it), so it cannot bound event
  time. `event_clock` is the broker's LogAppendTime when the record has it, otherwise the
  record's timestamp capped by the worker's wall clock. The contract's future-skew rule
  is checked against it, so no record moves a watermark past now + the allowed skew.
- **The partition count.** Homes depend on the usage topic's partition count. The count
  a partition's state was built with is kept in its processor state (`placement`); a
  different count refuses the partition (`PlacementError`) instead of re-homing tenants
  whose windows, dedup keys and quotas live elsewhere (docs/operations.md).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from tokenops.placement import home_partition, key_home
from tokenops.schemas.columns import EventColumns, MixedColumns
from tokenops.schemas.wire import CLOUDEVENTS_CONTENT_TYPE, CONTENT_TYPE_HEADER, encode_bundle
from tokenops.streams.errors import PlacementError
from tokenops.streams.processors import OutputRecord

# Kafka's record timestamp types (aiokafka `ConsumerRecord.timestamp_type`)
CREATE_TIME = 0  # set by the producer
LOG_APPEND_TIME = 1  # set by the broker when it appended the record

# A bundle's bytes (values, keys, and about this much header per element) stay far below
# the usage topic's default max.message.bytes (1 MiB), so a topic configured smaller
# (down to 128 KiB) refuses no bundle; a record above `_ALONE_BYTES` (a valid single
# event is at most 8 KiB) goes alone. About 300 single events fill a bundle.
BUNDLE_MAX_BYTES = 128 * 1024
_ELEMENT_OVERHEAD = 48
_ALONE_BYTES = 16 * 1024
_EVENT_TYPE = CLOUDEVENTS_CONTENT_TYPE.encode()


def event_clock(timestamp_ms: int, timestamp_type: int, wall_ms: int) -> int:
    """The time a record's events are judged against (epoch ms), never ahead of the
    broker or of the worker's clock. A LogAppendTime is used as is, so a replay after a
    crash gives the same verdict; a producer's timestamp counts only up to `wall_ms`."""
    if timestamp_type == LOG_APPEND_TIME and timestamp_ms >= 0:
        return timestamp_ms
    if timestamp_ms < 0:  # no timestamp at all (a pre-0.10 record format)
        return wall_ms
    return min(timestamp_ms, wall_ms)


class RecordRouter:
    """The home-or-forward decision of one input partition of the usage topic."""

    def __init__(self, topic: str, partition: int, partitions: int) -> None:
        if not 0 <= partition < partitions:
            raise ValueError(f"partition {partition} is not one of {partitions}")
        self.topic, self.partition, self.partitions = topic, partition, partitions
        self.bundles: dict[int, _Bundle] = {}  # home -> the bundle being filled
        self.forwarded: list[OutputRecord] = []  # full bundles and lone records

    def home(self, tenant_id: str) -> int:
        return home_partition(tenant_id, self.partitions)

    def forward(
        self,
        columns: EventColumns,
        value: bytes,
        headers: Sequence[tuple[str, bytes | None]] | None,
        clock_ms: int,
    ) -> OutputRecord | None:
        """None if the record's tenant is at home here; else the record to produce to its
        home partition. Its timestamp is this record's event clock, so on a CreateTime
        topic the home partition judges it by the same clock."""
        home = self.home(columns.tenant_id)
        if home == self.partition:
            return None
        return self._to(home, columns.tenant_id.encode(), value, headers, clock_ms)

    def forward_keyed(
        self,
        key: bytes | None,
        value: bytes,
        headers: Sequence[tuple[str, bytes | None]] | None,
        clock_ms: int,
        position: tuple[int, int],
    ) -> bool:
        """True when the record has a key whose home is not here: it then goes there
        undecoded, in that home's bundle or alone (`take_forwarded`). False when it must be
        decoded here (no key, a key that is not UTF-8, or a key at home). `position` is
        the (partition, offset) it was written at."""
        home = key_home(key, self.partitions)  # None: no tenant id in the key, judged here
        if key is None or home is None or home == self.partition:
            return False
        typed = _carried(headers)
        size = len(value) + len(key) + _ELEMENT_OVERHEAD if value.__class__ is bytes else 0
        if typed is None or not 0 < size <= _ALONE_BYTES:
            self.forwarded.append(self._to(home, key, value, headers, clock_ms))
            return True
        bundle = self.bundles.get(home)
        if bundle is not None and bundle.size + size > BUNDLE_MAX_BYTES:
            self.forwarded.append(self._bundled(home, self.bundles.pop(home)))
            bundle = None
        if bundle is None:
            bundle = self.bundles[home] = _Bundle()
        bundle.add(key.decode(), value, typed, position, clock_ms, size)
        return True

    def take_forwarded(self) -> list[OutputRecord]:
        """The records `forward_keyed` took since the last call, bundles closed."""
        out, self.forwarded = self.forwarded, []
        out += [self._bundled(home, bundle) for home, bundle in self.bundles.items()]
        self.bundles = {}
        return out

    def _bundled(self, home: int, b: _Bundle) -> OutputRecord:
        value, headers = encode_bundle(
            b.keys, b.values, b.typed, (b.partitions, b.offsets), b.clocks_ms
        )
        # the newest element's clock: at home each element's own is capped by it
        return OutputRecord(self.topic, None, value, headers, home, max(b.clocks_ms))

    def _to(
        self,
        home: int,
        key: bytes,
        value: bytes,
        headers: Sequence[tuple[str, bytes | None]] | None,
        clock_ms: int,
    ) -> OutputRecord:
        return OutputRecord(
            self.topic,
            key,
            value,
            [(k, v if v is not None else b"") for k, v in headers or ()] or None,
            partition=home,
            timestamp_ms=clock_ms,
        )


class _Bundle:
    """The records of one batch on their way to one home partition (`wire.encode_bundle`)."""

    __slots__ = ("clocks_ms", "keys", "offsets", "partitions", "size", "typed", "values")

    def __init__(self) -> None:
        self.keys: list[str] = []
        self.values: list[bytes] = []
        self.typed: list[int] = []
        self.partitions: list[int] = []
        self.offsets: list[int] = []
        self.clocks_ms: list[int] = []
        self.size = 0

    def add(
        self, key: str, value: bytes, typed: int, at: tuple[int, int], clock_ms: int, size: int
    ) -> None:
        self.keys.append(key)
        self.values.append(value)
        self.typed.append(typed)
        self.partitions.append(at[0])
        self.offsets.append(at[1])
        self.clocks_ms.append(clock_ms)
        self.size += size


def _carried(headers: Sequence[tuple[str, bytes | None]] | None) -> int | None:
    """What a bundle can carry of a record's headers: 0 for none, 1 for exactly the
    CloudEvents content type; None for anything else (a signature, binary-mode
    attributes, another content type), which the record keeps by going alone."""
    if not headers:
        return 0
    if len(headers) == 1:
        name, value = headers[0]
        if name == CONTENT_TYPE_HEADER and value == _EVENT_TYPE:
            return 1
    return None


class PlacementCheck:
    """A partition processor that remembers the partition count the state was built with.

    It keeps one key, `partitions`, written with the first counted batch, and refuses on
    `load` a state built with another count."""

    name = "placement"

    def __init__(self, partition: int, partitions: int) -> None:
        self.partition, self.partitions = partition, partitions
        self.stored: int | None = None

    def load(self, state: Mapping[str, Any]) -> None:
        stored = state.get("partitions")
        if stored is not None and stored != self.partitions:
            raise PlacementError(self.partition, stored, self.partitions)
        self.stored = stored

    def apply(
        self, columns: Sequence[EventColumns | MixedColumns], *, now_ms: int
    ) -> tuple[list[OutputRecord], dict[str, Any]]:
        if self.stored == self.partitions or not columns:
            return [], {}
        self.stored = self.partitions
        return [], {"partitions": self.partitions}
