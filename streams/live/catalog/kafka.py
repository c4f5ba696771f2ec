"""The catalog topic: creating it, reading it whole, publishing to it, following it.

The topic (``TACTFUL_CATALOG_TOPIC``, default ``<app id>.catalog``) has one
partition, so offsets give the arrival order, and is compacted with a key per
version (``<hash>@<at>``), so compaction keeps every version. Its
``max.message.bytes`` is 8 MiB: a version holds a whole folder.

Every reader assigns itself the partition (no consumer group, no committed
offset): each worker and each command sees every version. The start-up read
(:func:`read_all`) and :func:`publish` are blocking (confluent-kafka), for the
command line and for a worker before its app starts; a running worker follows
the topic with :class:`CatalogFollower`, an aiokafka consumer on the worker's
event loop, from where the start-up read ended.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from confluent_kafka import KafkaException, TopicPartition
from confluent_kafka.cimpl import NewTopic

from streams.clients import kafka_admin, kafka_consumer, kafka_producer, kafka_reason, wait_for_kafka
from streams.errors import CatalogRefused, InfraError
from streams.live.catalog.record import CatalogRecord, load_record
from streams.live.catalog.versions import LiveCatalog
from streams.settings import Settings

log = logging.getLogger(__name__)

MAX_RECORD_BYTES = 8 * 1024 * 1024
TOPIC_CONFIG = {
    "cleanup.policy": "compact",
    "max.message.bytes": str(MAX_RECORD_BYTES),
    # Versions are few and small: compact soon, so the log reads as the set of versions.
    "min.cleanable.dirty.ratio": "0.1",
}


@dataclass(frozen=True)
class Raw:
    """A catalog record as read: its offset, key and value."""

    offset: int
    key: bytes | None
    value: bytes | None


def ensure_topic(settings: Settings, timeout: float | None = None) -> None:
    """Create the catalog topic if absent (one partition, compacted)."""
    timeout = settings.processing.start_timeout if timeout is None else timeout
    admin = kafka_admin(settings.kafka)
    topic = settings.topics.catalog
    if topic in wait_for_kafka(admin, settings.kafka, timeout).topics:
        return
    new = NewTopic(topic, 1, settings.topics.replication, config=TOPIC_CONFIG)
    for name, fut in admin.create_topics([new], operation_timeout=timeout).items():
        try:
            fut.result()
        except KafkaException as exc:
            if "TOPIC_ALREADY_EXISTS" not in str(exc):  # another worker or a deploy won the race
                raise InfraError(f"cannot create the catalog topic {name}: {kafka_reason(exc)}") from exc


def read_all(settings: Settings, timeout: float = 30.0) -> list[Raw]:
    """Every record of the catalog topic, from the first to the end as it is now."""
    topic = settings.topics.catalog
    consumer = kafka_consumer(
        settings.kafka,
        **{"group.id": f"{settings.topics.app_id}-catalog-reader", "enable.auto.commit": False},
    )
    try:
        tp = TopicPartition(topic, 0)
        deadline = time.monotonic() + timeout
        while True:
            try:
                low, high = consumer.get_watermark_offsets(tp, timeout=max(deadline - time.monotonic(), 0.1))
                break
            except KafkaException as exc:
                # A topic just created can be unknown to a broker for a moment.
                if time.monotonic() > deadline:
                    raise InfraError(f"cannot read the catalog topic {topic}: {kafka_reason(exc)}") from exc
                time.sleep(0.2)
        out: list[Raw] = []
        if high <= low:
            return out
        consumer.assign([TopicPartition(topic, 0, low)])
        while not out or out[-1].offset < high - 1:
            if time.monotonic() > deadline:
                raise InfraError(f"reading the catalog topic {topic} took more than {timeout:.0f}s")
            for m in consumer.consume(100, 0.5):
                if m.error() is None:
                    out.append(Raw(m.offset() or 0, m.key(), m.value()))
        return out
    finally:
        consumer.close()


def publish(settings: Settings, record: CatalogRecord, timeout: float = 30.0) -> int:
    """Publish one version; its offset once the broker has it."""
    return publish_raw(settings, record.key, record.to_bytes(), timeout)


def publish_raw(settings: Settings, key: bytes, value: bytes, timeout: float = 30.0) -> int:
    producer = kafka_producer(
        settings.kafka, **{"enable.idempotence": "true", "acks": "all", "message.max.bytes": MAX_RECORD_BYTES}
    )
    offsets: list[int] = []
    errors: list[str] = []

    def done(err: object, msg: object) -> None:
        if err is not None:
            errors.append(str(err))
        else:
            offsets.append(msg.offset())  # type: ignore[attr-defined]

    producer.produce(settings.topics.catalog, key=key, value=value, on_delivery=done)
    left = producer.flush(timeout)
    if errors or left or not offsets:
        raise InfraError(
            f"cannot publish to the catalog topic {settings.topics.catalog}: {errors[0] if errors else 'timed out'}"
        )
    return offsets[0]


def load_all(raws: Iterable[Raw], live: LiveCatalog) -> None:
    """Load each record into ``live``; refused ones are logged and counted, never raised.

    A tombstone (no value) is skipped: it is how an operator lets compaction remove a
    refused record. It takes no version back: versions are immutable, and a replay of
    the period needs every one."""
    for raw in raws:
        if raw.value is None:
            log.info("catalog tombstone at offset %d skipped", raw.offset)
            continue
        try:
            version = load_record(raw.value, raw.offset)
        except CatalogRefused as exc:
            live.refuse(exc, f"at offset {raw.offset}")
            continue
        live.add(version)


def committed_stream_times(settings: Settings, timeout: float = 10.0) -> Mapping[int, int]:
    """The stream time each input partition committed with its offset (the workers' group); none if none."""
    from streams.live.faust.source import committed_reader
    from streams.live.runtime import decode_stream_time

    admin = kafka_admin(settings.kafka)
    meta = wait_for_kafka(admin, settings.kafka, timeout).topics.get(settings.topics.input)
    if meta is None or not meta.partitions:
        return {}
    read = committed_reader(settings.kafka, settings.topics.app_id, settings.topics.input, timeout)
    try:
        found = read(sorted(meta.partitions))
    except Exception as exc:
        raise InfraError(f"cannot read the workers' committed stream times: {exc!r}") from exc
    return {p: t for p, (_, text) in found.items() if (t := decode_stream_time(text)) is not None}
