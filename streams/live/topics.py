"""Create the worker's topics if absent (Faust creates only its own internal ones).

:func:`ensure_topics` is where a starting worker first needs the brokers: it
waits for them (:func:`~streams.clients.wait_for_kafka`: backoff, one warning
per attempt) for ``TACTFUL_START_TIMEOUT`` seconds, then gives up with
:class:`~streams.errors.InfraError`, so a worker started without a broker says
so and exits instead of retrying forever.

:func:`record_limits` then reads what each output topic takes
(``max.message.bytes``), so that no record the worker writes is refused by
the broker (:mod:`streams.live.limits`).
"""

from __future__ import annotations

import logging
import time

from confluent_kafka import KafkaException
from confluent_kafka.admin import ConfigResource  # type: ignore[attr-defined]  # re-exported, untyped
from confluent_kafka.cimpl import NewTopic

from streams.clients import kafka_admin, kafka_reason, wait_for_kafka
from streams.errors import InfraError
from streams.live.limits import RecordLimits
from streams.settings import Settings
from streams.topology import Catalog
from streams.topology.model import Engage, Suppress

log = logging.getLogger(__name__)

DAY_MS = 86_400_000


def channels(catalog: Catalog) -> list[str]:
    found: set[str] = set()
    for topo in catalog.topologies:
        for action in topo.then:
            if isinstance(action, Suppress):
                found.update(action.channels)
            elif isinstance(action, Engage):
                found.add(action.channel)
    return sorted(found)


def decision_retention_ms(catalog: Catalog) -> int:
    """Long enough that `redis-rebuild` finds every suppression still active: twice the longest."""
    longest = max((a.duration for t in catalog.topologies for a in t.then if isinstance(a, Suppress)), default=DAY_MS)
    return max(2 * longest, 30 * DAY_MS)


def ensure_topics(settings: Settings, catalog: Catalog, timeout: float | None = None) -> int:
    """Create missing topics; return the input topic's partition count (which rules routing).

    Waits up to ``timeout`` seconds (default: ``settings.processing.start_timeout``)
    for the brokers, then for each step after; :class:`InfraError` when they do not answer.
    """
    timeout = settings.processing.start_timeout if timeout is None else timeout
    admin = kafka_admin(settings.kafka)
    existing = wait_for_kafka(admin, settings.kafka, timeout).topics
    n, r = settings.topics.partitions, settings.topics.replication
    keep = str(decision_retention_ms(catalog))
    wanted = [
        # LogAppendTime: the broker's append time is what latency is measured from.
        NewTopic(settings.topics.input, n, r, config={"message.timestamp.type": "LogAppendTime"}),
        NewTopic(settings.topics.dlq, n, r, config={"retention.ms": str(14 * DAY_MS)}),
        NewTopic(settings.topics.audit, n, r, config={"retention.ms": keep, "message.timestamp.type": "LogAppendTime"}),
        *(
            NewTopic(
                settings.topics.decision(ch),
                n,
                r,
                config={"retention.ms": keep, "message.timestamp.type": "LogAppendTime"},
            )
            for ch in channels(catalog)
        ),
    ]
    missing = [t for t in wanted if t.topic not in existing]
    if missing:
        for topic, fut in admin.create_topics(missing, operation_timeout=timeout).items():
            try:
                fut.result()
            except KafkaException as exc:
                if "TOPIC_ALREADY_EXISTS" not in str(exc):  # a concurrent worker won the race
                    raise InfraError(f"cannot create topic {topic}: {kafka_reason(exc)}") from exc
    # A topic just created can show no partitions in metadata for a moment.
    deadline = time.monotonic() + timeout
    while True:
        try:
            listed = admin.list_topics(topic=settings.topics.input, timeout=max(deadline - time.monotonic(), 0.1))
        except KafkaException as exc:
            raise InfraError(f"cannot read the metadata of topic {settings.topics.input}: {kafka_reason(exc)}") from exc
        meta = listed.topics.get(settings.topics.input)
        if meta is not None and meta.partitions and meta.error is None:
            return len(meta.partitions)
        if time.monotonic() > deadline:
            raise InfraError(f"topic {settings.topics.input} has no partitions after {timeout:.0f}s")
        time.sleep(0.2)


def record_limits(
    settings: Settings, topics: list[str], max_request: int, timeout: float | None = None
) -> RecordLimits:
    """Each topic's ``max.message.bytes`` (the broker's default included), capped by the
    producer's ``max_request``, which aiokafka checks per record. A topic whose
    configuration cannot be read gets the smaller of Kafka's default and ``max_request``."""
    timeout = settings.processing.start_timeout if timeout is None else timeout
    admin = kafka_admin(settings.kafka)
    resources = [ConfigResource("topic", t) for t in sorted(set(topics))]
    found: dict[str, int] = {}
    for res, fut in admin.describe_configs(resources, request_timeout=timeout).items():
        try:
            entry = fut.result().get("max.message.bytes")
        except KafkaException as exc:  # not created yet (Faust's changelog): the default holds
            log.warning("cannot read max.message.bytes of topic %s: %s", res.name, kafka_reason(exc))
            continue
        if entry is not None and entry.value is not None:
            found[res.name] = min(int(entry.value), max_request)
    return RecordLimits(found, default=min(max_request, 1_048_588))
