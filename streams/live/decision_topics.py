"""Reading decision topics back from Kafka: every decision up to the end as of now.

For ``tactful redis-rebuild`` (and anything else that needs the history of
decisions): :func:`read_decision_topics` reads each partition from the
beginning to the high watermark it had at the start, with a throwaway
consumer group that commits nothing, and :func:`decisions_from_partitions`
decodes and merges them. The consumer takes the deployment's full client
options (SASL, TLS), so it reaches any cluster the worker reaches.

A forget record (:mod:`streams.live.forget`: an erased customer) is read as a
:class:`Forgotten` in its place, and drops that customer's decisions before
it in its partition, so a rebuild never brings an erased customer back.
"""

from __future__ import annotations

import heapq
import logging
import time
import uuid
from collections import Counter as Tally
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from streams.codec.avro import Resolver, decode
from streams.decisions import Decision
from streams.errors import ConfigError, InfraError, InputError
from streams.live.forget import forgotten

log = logging.getLogger(__name__)

ClientOptions = Mapping[str, str | int | float | bool]
"""librdkafka client options, as :meth:`streams.settings.KafkaConnection.librdkafka` renders them."""

Partition = tuple[str, int]


@dataclass(frozen=True, slots=True)
class Forgotten:
    """A forget record read from a decision topic: this customer's earlier decisions are void."""

    customer_id: str


@dataclass(slots=True)
class ReadStats:
    """What :func:`read_decision_topics` read: records, and those it had to skip and why."""

    records: int = 0
    skipped: int = 0
    duplicates: int = 0  # the same decision_id again (e.g. in a channel topic and the audit topic)
    forgotten: int = 0  # decisions dropped by a later forget record of their customer
    reasons: Tally[str] = field(default_factory=Tally)

    def skip(self, reason: str) -> None:
        self.skipped += 1
        self.reasons[reason] += 1


def decisions_from_partitions(
    values: Mapping[Partition, Sequence[bytes | Forgotten | None]], resolve: Resolver, stats: ReadStats | None = None
) -> list[Decision]:
    """Decode each partition's record values (in offset order) and merge them by (effective_at, decision_id).

    The merge never reorders records of one partition: decisions are keyed by
    customer, so a customer's decisions keep the order the worker made them
    in, even where a late match made an earlier ``effective_at`` after a later
    one. Records that do not decode are skipped and counted in ``stats``; a
    decision_id seen before is dropped.
    """
    tally = ReadStats() if stats is None else stats
    decoded = [_decode_partition(values[part], resolve, tally) for part in sorted(values)]
    merged: list[Decision] = []
    seen: set[str] = set()
    for decision in heapq.merge(*decoded, key=lambda d: (d.effective_at, d.decision_id)):
        if decision.decision_id in seen:
            tally.duplicates += 1
            continue
        seen.add(decision.decision_id)
        merged.append(decision)
    return merged


def _decode_partition(
    values: Sequence[bytes | Forgotten | None], resolve: Resolver, stats: ReadStats
) -> list[Decision]:
    out: list[Decision] = []
    for value in values:
        stats.records += 1
        if isinstance(value, Forgotten):
            kept = [d for d in out if d.customer_id != value.customer_id]
            stats.forgotten += len(out) - len(kept)
            out = kept
            continue
        if value is None:
            stats.skip("tombstone")
            continue
        try:
            out.append(Decision.from_record(decode(value, resolve)))
        except InputError as exc:
            stats.skip(exc.reason)
        except (KeyError, TypeError, ValueError):
            stats.skip("not_a_decision")
    return out


def read_decision_topics(
    client_options: ClientOptions,
    topics: Sequence[str],
    resolve: Resolver,
    timeout_s: float,
    *,
    stats: ReadStats | None = None,
) -> list[Decision]:
    """Every decision in ``topics`` from the beginning up to the end as of the call.

    ``client_options`` are the cluster's librdkafka options (bootstrap
    servers, SASL, TLS); the consumer's own group and offset options go on
    top. Reads each partition to the high watermark it had at the start (new
    records are left for the live mirror), with a throwaway consumer group
    that commits nothing. Returns the decisions merged as
    :func:`decisions_from_partitions` says. Raises :class:`ConfigError` for a
    topic that does not exist and :class:`InfraError` when Kafka fails or the
    end is not reached within ``timeout_s``.
    """
    # Imported here: only `tactful redis-rebuild` needs librdkafka, not the worker.
    from confluent_kafka import Consumer, KafkaException

    deadline = time.monotonic() + timeout_s
    consumer = Consumer(_consumer_config(client_options))
    try:
        ends = _partition_ends(consumer, topics, deadline)
        values = _read_to_ends(consumer, ends, deadline)
    except KafkaException as exc:
        where = client_options.get("bootstrap.servers", "the configured cluster")
        raise InfraError(f"reading decision topics {', '.join(topics)} from {where} failed: {exc}") from exc
    finally:
        consumer.close()
    return decisions_from_partitions(values, resolve, stats)


def _consumer_config(client_options: ClientOptions) -> dict[str, str | int | float | bool]:
    """``client_options`` with a fresh throwaway group that reads from the start, commits nothing and reports EOF."""
    return {
        **client_options,
        "group.id": f"tactful-redis-rebuild-{uuid.uuid4().hex}",
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
        "enable.partition.eof": True,
        # librdkafka's default, said here: an aborted (exactly-once) batch's decisions are not rebuilt.
        "isolation.level": "read_committed",
    }


def _remaining(deadline: float, what: str) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise InfraError(f"timed out {what}")
    return left


def _list_topic(consumer: Any, topic: str, deadline: float) -> Any:
    """``topic``'s metadata, asked for in short attempts until ``deadline``.

    Between attempts the consumer is polled (nothing is assigned yet, so no
    message is taken): that serves the error callback, which raises at once
    for a refused login or TLS handshake (:func:`streams.clients.kafka_options`)
    where one long ``list_topics`` would wait out the whole timeout.
    """
    from confluent_kafka import KafkaError, KafkaException

    while True:
        left = _remaining(deadline, f"listing topic {topic}")
        try:
            return consumer.list_topics(topic=topic, timeout=min(left, 1.0))
        except KafkaException as exc:
            error = exc.args[0] if exc.args else None
            waited = isinstance(error, KafkaError) and error.code() in (KafkaError._TRANSPORT, KafkaError._TIMED_OUT)
            if not waited or left <= 1.0:
                raise
        finally:
            consumer.poll(0)


def _partition_ends(consumer: Any, topics: Sequence[str], deadline: float) -> dict[Partition, tuple[int, int]]:
    from confluent_kafka import TopicPartition

    ends: dict[Partition, tuple[int, int]] = {}
    for topic in topics:
        meta = _list_topic(consumer, topic, deadline)
        info = meta.topics.get(topic)
        if info is None or info.error is not None:
            raise ConfigError(f"decision topic {topic!r} does not exist ({info.error if info else 'unknown'})")
        for number in sorted(info.partitions):
            offsets = consumer.get_watermark_offsets(
                TopicPartition(topic, number), timeout=_remaining(deadline, f"reading offsets of {topic}"), cached=False
            )
            if offsets is None:
                raise InfraError(f"timed out reading offsets of {topic}[{number}]")
            ends[(topic, number)] = (int(offsets[0]), int(offsets[1]))
    return ends


def _value(message: Any) -> bytes | Forgotten | None:
    """A record's value, or a :class:`Forgotten` for a forget record."""
    value: bytes | None = message.value()
    key: bytes | None = message.key()
    if value is None and key is not None and forgotten(message.headers()):
        return Forgotten(key.decode("utf-8", "replace"))
    return value


def _read_to_ends(
    consumer: Any, ends: Mapping[Partition, tuple[int, int]], deadline: float
) -> dict[Partition, list[bytes | Forgotten | None]]:
    from confluent_kafka import KafkaError, TopicPartition

    values: dict[Partition, list[bytes | Forgotten | None]] = {part: [] for part in ends}
    todo = {part for part, (low, high) in ends.items() if high > low}
    if not todo:
        return values
    consumer.assign([TopicPartition(topic, number, ends[(topic, number)][0]) for topic, number in sorted(todo)])
    while todo:
        left = _remaining(deadline, f"reading decision topics, {len(todo)} partitions short of their end")
        for message in consumer.consume(num_messages=1000, timeout=min(left, 1.0)):
            part = (message.topic(), message.partition())
            error = message.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    # The end may lie before the high watermark (transaction markers,
                    # an open transaction); EOF says there is nothing more to read.
                    todo.discard(part)
                elif error.fatal():
                    raise InfraError(f"Kafka consumer failed: {error}")
                else:
                    log.debug("Kafka consumer error (retried by librdkafka): %s", error)
                continue
            if part not in todo or message.offset() >= ends[part][1]:
                continue
            values[part].append(_value(message))
            if message.offset() + 1 >= ends[part][1]:
                todo.discard(part)
    return values
