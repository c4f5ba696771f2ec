"""Create the worker's topics if absent (Faust creates only its own internal ones)."""

from __future__ import annotations

import time

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from streams.errors import InfraError
from streams.settings import Settings
from streams.topology import Catalog
from streams.topology.model import Engage, Suppress

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


def ensure_topics(settings: Settings, catalog: Catalog, timeout: float = 30.0) -> int:
    """Create missing topics; return the input topic's partition count (which rules routing)."""
    admin = AdminClient(dict(settings.kafka.librdkafka()))
    try:
        existing = admin.list_topics(timeout=timeout).topics
    except KafkaException as exc:
        raise InfraError(f"cannot reach Kafka at {settings.kafka.bootstrap_servers}: {exc}") from exc
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
                    raise InfraError(f"cannot create topic {topic}: {exc}") from exc
    # A topic just created can show no partitions in metadata for a moment.
    deadline = time.monotonic() + timeout
    while True:
        meta = admin.list_topics(topic=settings.topics.input, timeout=timeout).topics.get(settings.topics.input)
        if meta is not None and meta.partitions and meta.error is None:
            return len(meta.partitions)
        if time.monotonic() > deadline:
            raise InfraError(f"topic {settings.topics.input} has no partitions after {timeout:.0f}s")
        time.sleep(0.2)
