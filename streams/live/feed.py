"""Produce touchpoints to Kafka: Avro in the Confluent wire format, keyed by customer.

Uses librdkafka's ``murmur2_random`` partitioner, the Java client's, so every
event lands on its customer's partition and the worker never has to re-route.
Records Avro cannot hold (the generator's broken events) are sent as their
JSON bytes, so the dead-letter path sees them too. With a schema registry the
records carry its id for the touchpoint schema, registered at the start. Before the first record it
waits for the brokers (``TACTFUL_START_TIMEOUT``), so a feed with no broker
fails with one line instead of queueing records that can never be delivered.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import orjson
from confluent_kafka import KafkaException, Producer

from streams.clients import kafka_producer, kafka_reason, wait_for_kafka
from streams.codec import avro
from streams.errors import InfraError, MalformedRecord
from streams.live.codecs import touchpoint_schema_id
from streams.settings import Settings


def producer(settings: Settings, **extra: str | int) -> Producer:
    return kafka_producer(
        settings.kafka,
        **{
            "partitioner": "murmur2_random",
            "linger.ms": 5,
            "enable.idempotence": "true",
            "compression.type": "lz4",
            **extra,
        },
    )


def encode_event(raw: Mapping[str, Any] | object, schema_id: int | None = None) -> tuple[bytes | None, bytes]:
    """(key, value) for one generated record; JSON bytes where Avro cannot hold it.

    ``schema_id``: the registry's id of the touchpoint schema (default: the local id).
    """
    key = raw.get("customer_id") if isinstance(raw, Mapping) else None
    key_bytes = key.encode() if isinstance(key, str) else None
    if schema_id is None:
        schema_id = avro.touchpoint_schema_id()
    try:
        value = avro.encode(avro.touchpoint_to_avro(raw), avro.touchpoint_schema(), schema_id)
    except MalformedRecord:
        value = orjson.dumps(raw)
    return key_bytes, value


def feed(
    settings: Settings,
    events: Iterable[Mapping[str, Any] | object],
    *,
    rate: float | None = None,
    duration: float | None = None,
    should_stop: Callable[[], bool] = lambda: False,
    topic: str | None = None,
) -> int:
    """Send events (at ``rate`` per second if given); returns how many were sent."""
    prod = producer(settings)
    target = topic or settings.topics.input
    wait_for_kafka(prod, settings.kafka, settings.processing.start_timeout)
    # With a schema registry, the id it gives the touchpoint schema (docs/registry.md).
    schema_id = touchpoint_schema_id(settings)
    sent = 0
    started = time.monotonic()
    try:
        for raw in events:
            if should_stop() or (duration is not None and time.monotonic() - started >= duration):
                break
            key, value = encode_event(raw, schema_id)
            while True:
                try:
                    prod.produce(target, value=value, key=key)
                    break
                except BufferError:
                    prod.poll(0.05)  # the local queue is full: let deliveries drain
            sent += 1
            if rate:
                ahead = sent / rate - (time.monotonic() - started)
                if ahead > 0:
                    prod.poll(0)
                    time.sleep(ahead)
            elif sent % 10_000 == 0:
                prod.poll(0)
        left = prod.flush(60)
    except KafkaException as exc:
        raise InfraError(f"producing to {target} failed: {kafka_reason(exc)}") from exc
    if left:
        raise InfraError(f"{left} records were not delivered to {target} within 60s")
    return sent
