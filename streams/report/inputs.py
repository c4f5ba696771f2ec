"""The report's inputs: audit records and touchpoints, from files or topics, streamed.

A :class:`Source` is an iterator of plain dicts plus what a progress bar needs
(a total, and how far in it is). Records that are not JSON objects, or Avro
values that do not decode, are counted in ``bad`` and skipped: a report over
millions of records must not stop at one broken line.

- Files: JSON Lines (what ``replay --audit`` writes, or touchpoints) or Avro
  object container files, sniffed by content, read in file order.
- Topics: each partition from the first record at or after ``since`` (by
  the record's Kafka timestamp; the audit topic stamps LogAppendTime) up to
  the end it had when the read began; records stamped after ``until`` are
  left out. A throwaway consumer group that commits nothing, with the
  deployment's client options (SASL, TLS) from :mod:`streams.clients`.
  Audit values are Avro decisions; times come out as epoch milliseconds.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from streams.errors import ConfigError, InfraError, InputError

Resolver = Callable[[int], Any]


@dataclass
class Source:
    """Records being read, with how far in the read is (``done`` of ``total``, in ``unit``)."""

    name: str
    records: Iterator[dict[str, Any]]
    total: int
    done: Callable[[], int]
    unit: str = "bytes"
    bad: list[int] = field(default_factory=lambda: [0])
    # The partition of the record last yielded (0 for a file): `tactful diff` keeps one
    # watermark per partition, as the live workers do.
    partition: Callable[[], int] = lambda: 0

    @property
    def bad_records(self) -> int:
        return self.bad[0]


def open_file(path: str | Path) -> Source:
    """A JSON Lines or Avro object container file (``EventsFileError`` when it cannot be read)."""
    from streams.replay import open_events

    events = open_events(Path(path))
    bad = [0]

    def records() -> Iterator[dict[str, Any]]:
        for _, value in events.records:
            if isinstance(value, dict):
                yield value
            else:  # a MalformedRecord, or JSON that is not an object
                bad[0] += 1

    return Source(str(path), records(), events.size, events.position, bad=bad)


def open_topic(
    client_options: Mapping[str, Any],
    topic: str,
    *,
    since: int | None,
    until: int | None,
    decode: Callable[[bytes], dict[str, Any]],
    timeout_s: float = 60.0,
) -> Source:
    """The records of ``topic`` stamped in ``[since, until]``, decoded by ``decode``."""
    from confluent_kafka import Consumer, KafkaException, TopicPartition

    deadline = time.monotonic() + timeout_s
    consumer = Consumer(
        {
            **client_options,
            "group.id": f"tactful-report-{uuid.uuid4().hex}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
        }
    )
    try:
        meta = consumer.list_topics(topic=topic, timeout=_left(deadline, topic))
        info = meta.topics.get(topic)
        if info is None or info.error is not None:
            raise ConfigError(f"topic {topic!r} does not exist ({info.error if info else 'unknown'})")
        starts: list[Any] = []
        ends: dict[int, int] = {}
        for number in sorted(info.partitions):
            low, high = consumer.get_watermark_offsets(
                TopicPartition(topic, number), timeout=_left(deadline, topic), cached=False
            )
            starts.append(TopicPartition(topic, number, since if since is not None else low))
            ends[number] = high
        if since is not None:
            starts = consumer.offsets_for_times(starts, timeout=_left(deadline, topic))
    except KafkaException as exc:
        consumer.close()
        raise InfraError(f"reading {topic} failed: {exc}") from exc
    except BaseException:  # a missing topic, a timeout: the consumer goes too
        consumer.close()
        raise
    first = {tp.partition: (tp.offset if tp.offset >= 0 else ends[tp.partition]) for tp in starts}
    total = sum(max(0, ends[p] - first[p]) for p in ends)
    state = {"done": 0, "partition": 0}
    bad = [0]

    def records() -> Iterator[dict[str, Any]]:
        from confluent_kafka import KafkaError

        todo = {p for p in ends if ends[p] > first[p]}
        try:
            if todo:
                consumer.assign([TopicPartition(topic, p, first[p]) for p in sorted(todo)])
            while todo:
                for message in consumer.consume(num_messages=1000, timeout=1.0):
                    error = message.error()
                    part = message.partition()
                    if error is not None:
                        if error.code() == KafkaError._PARTITION_EOF:
                            todo.discard(part)
                        elif error.fatal():
                            raise InfraError(f"Kafka consumer failed: {error}")
                        continue
                    offset = message.offset()
                    if offset is None or part not in todo or offset >= ends[part]:
                        continue
                    state["done"] += 1
                    if offset + 1 >= ends[part]:
                        todo.discard(part)
                    stamp: int = message.timestamp()[1]
                    if until is not None and stamp > until:
                        continue
                    value = message.value()
                    if value is None:
                        continue
                    state["partition"] = part
                    try:
                        yield decode(value)
                    except (InputError, KeyError, TypeError, ValueError):
                        bad[0] += 1
        except KafkaException as exc:
            raise InfraError(f"reading {topic} failed: {exc}") from exc
        finally:
            consumer.close()

    return Source(
        topic, records(), total, lambda: state["done"], unit="records", bad=bad, partition=lambda: state["partition"]
    )


def _left(deadline: float, topic: str) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise InfraError(f"timed out reading the offsets of {topic}")
    return left


def avro_decision(resolve: Resolver) -> Callable[[bytes], dict[str, Any]]:
    """Decode an audit topic value into the dict ``replay --audit`` writes (times as epoch ms)."""
    from streams.codec.avro import decision_from_avro, decode

    def run(value: bytes) -> dict[str, Any]:
        return decision_from_avro(decode(value, resolve))

    return run


def avro_touchpoint(resolve: Resolver) -> Callable[[bytes], dict[str, Any]]:
    """Decode an input topic value into a touchpoint dict (times as epoch ms)."""
    from streams.codec.avro import decode

    def run(value: bytes) -> dict[str, Any]:
        return decode(value, resolve)

    return run
