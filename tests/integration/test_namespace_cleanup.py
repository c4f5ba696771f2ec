"""The namespace fixture's teardown: what a test made on the broker, in Redis and on disk is gone after it."""

from __future__ import annotations

from pathlib import Path

import redis
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import NewTopic

from tests.integration.conftest import Namespace, admin, wait_until
from tests.integration.services import kafka_bootstrap, redis_url


def leave_traces(ns: Namespace) -> tuple[str, str, str, Path]:
    """What a worker would leave: a topic, a consumer group with a committed offset, a key, state on disk."""
    topic, group, key = f"{ns.kafka_prefix}.touchpoints", ns.kafka_prefix, f"{ns.redis_prefix}:s:c1:email"
    client = admin()
    client.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])[topic].result(30)
    c = Consumer({"bootstrap.servers": kafka_bootstrap(), "group.id": group, "enable.auto.commit": False})
    try:
        c.commit(offsets=[TopicPartition(topic, 0, 0)], asynchronous=False)
    finally:
        c.close()
    with redis.Redis.from_url(redis_url()) as r:
        r.hset(key, "t1|*", "1")
    state = ns.data / "w1" / "state.db"
    state.parent.mkdir(parents=True)
    state.write_bytes(b"state")
    return topic, group, key, ns.data


def present(topic: str, group: str, key: str, data: Path) -> dict[str, bool]:
    client = admin()
    with redis.Redis.from_url(redis_url()) as r:
        has_key = bool(r.exists(key))
    return {
        "topic": topic in client.list_topics(timeout=10).topics,
        "group": group in {g.group_id for g in client.list_consumer_groups(request_timeout=10).result().valid},
        "key": has_key,
        "data": data.exists(),
    }


def test_cleanup_deletes_the_namespaces_topics_groups_keys_and_data_and_nothing_else(
    services: None, tmp_path: Path
) -> None:
    ns, other = Namespace(tmp_path / "ns"), Namespace(tmp_path / "other")
    mine, theirs = leave_traces(ns), leave_traces(other)
    try:
        all_there = {"topic": True, "group": True, "key": True, "data": True}
        assert present(*mine) == all_there
        ns.cleanup()
        # Deleted topics leave the broker's metadata a moment after the controller confirms.
        gone = {"topic": False, "group": False, "key": False, "data": False}
        wait_until(lambda: present(*mine) == gone, 30, f"namespace {ns.id} gone, now {present(*mine)}")
        assert present(*theirs) == all_there  # another namespace's things are untouched
    finally:
        other.cleanup()
    assert present(*theirs)["key"] is False
