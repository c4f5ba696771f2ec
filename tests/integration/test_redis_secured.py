"""The mirror, `tactful check` and `tactful redis-rebuild` on a Redis Cluster and on a Redis with TLS and ACLs.

Both Redis kinds are started by ``deploy/local/redis-cluster.sh`` in this
module's own run dir on free ports, and stopped (by pid) at the end; Kafka is
the shared local broker. A Redis that cannot start fails the tests, never
skips them. The clients are built from settings exactly as the worker and the
command line build them (``streams.clients.redis_client``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from confluent_kafka import KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewTopic
from prometheus_client import CollectorRegistry
from redis.asyncio.cluster import RedisCluster

from streams.clients import redis_client
from streams.codec.avro import decision_schema, decision_schema_id, decode, encode, local_registry
from streams.decisions import Decision, Kind
from streams.live.faust.mirror_log import KafkaDecisionLog
from streams.live.topics import channels
from streams.mirror import (
    MirrorConsumer,
    RedisClient,
    category_key,
    channel_key,
    customer_slot,
    generation_key,
    is_suppressed,
)
from streams.settings import Settings
from streams.topology import load_folder
from tests.integration.conftest import REPO, TACTFUL, Namespace, wait_until
from tests.integration.services import kafka_bootstrap
from tests.mirror.support import decision
from tests.support import until

pytestmark = pytest.mark.integration

SCRIPT = REPO / "deploy" / "local" / "redis-cluster.sh"
CUSTOMERS = [f"cust-{i}" for i in range(24)]  # enough that every node of the cluster holds some


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _free_cluster_base() -> int:
    """A first port P with P..P+2 and their cluster bus ports (+10000) free."""
    for _ in range(200):
        base = random.randrange(30000, 45000)
        if all(_free(p) for p in (*range(base, base + 3), *range(base + 10000, base + 10003))):
            return base
    raise AssertionError("no free ports for a Redis Cluster")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class Servers:
    cluster_url: str
    tls_url: str
    user: str
    password: str
    ca_file: Path

    def env(self, kind: str, prefix: str, **extra: str) -> dict[str, str]:
        """TACTFUL_* variables for ``kind`` ("cluster" or "tls")."""
        if kind == "cluster":
            redis = {"TACTFUL_REDIS_URL": self.cluster_url, "TACTFUL_REDIS_CLUSTER": "true"}
        else:
            redis = {
                "TACTFUL_REDIS_URL": self.tls_url,
                "TACTFUL_REDIS_USERNAME": self.user,
                "TACTFUL_REDIS_PASSWORD": self.password,
                "TACTFUL_REDIS_CA_FILE": str(self.ca_file),
            }
        return {"TACTFUL_BOOTSTRAP_SERVERS": kafka_bootstrap(), "TACTFUL_REDIS_PREFIX": prefix, **redis, **extra}


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    run = tmp_path_factory.mktemp("redis-secured")
    env = {
        **os.environ,
        "TACTFUL_REDIS_CLUSTER_DIR": str(run),
        "TACTFUL_REDIS_CLUSTER_PORT": str(_free_cluster_base()),
        "TACTFUL_REDIS_TLS_PORT": str(_free_port()),
    }
    up = subprocess.run(["bash", str(SCRIPT), "up"], env=env, capture_output=True, text=True, timeout=120)
    try:
        # Fail, never skip: a green run must have tested the real servers.
        assert up.returncode == 0, f"redis-cluster.sh up failed:\n{up.stdout}{up.stderr}"
        yield Servers(
            cluster_url=(run / "cluster" / "url").read_text().strip(),
            tls_url=(run / "tls" / "url").read_text().strip(),
            user=(run / "tls" / "user").read_text().strip(),
            password=(run / "tls" / "password").read_text().strip(),
            ca_file=run / "tls" / "ca.pem",
        )
    finally:
        down = subprocess.run(["bash", str(SCRIPT), "down"], env=env, capture_output=True, text=True, timeout=120)
        assert down.returncode == 0, f"redis-cluster.sh down failed:\n{down.stdout}{down.stderr}"


@pytest.fixture
def ns() -> Iterator[tuple[str, str]]:
    """(Kafka topic prefix, Redis prefix) of this test; the decision topics of every catalog channel exist."""
    tag = uuid.uuid4().hex[:10]
    kafka_prefix = f"it-{tag}"
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap()})
    topics = [f"{kafka_prefix}.decisions.{ch}" for ch in channels(load_folder(REPO / "topologies"))]
    for future in admin.create_topics([NewTopic(t, num_partitions=2, replication_factor=1) for t in topics]).values():
        future.result(30)
    try:
        # The ACL user of the TLS Redis may touch keys starting "tactful" only.
        yield kafka_prefix, f"tactful-it-{tag}"
    finally:
        for future in admin.delete_topics(topics).values():
            future.result(30)
        groups = [f"{kafka_prefix}-redis-mirror"]
        for future in admin.delete_consumer_groups(groups, request_timeout=30).values():
            with contextlib.suppress(KafkaException):  # never created, when a test failed before the mirror joined
                future.result()


def settings(servers: Servers, kind: str, ns: tuple[str, str]) -> Settings:
    kafka_prefix, prefix = ns
    return Settings.from_env(
        servers.env(
            kind, prefix, TACTFUL_APP_ID=kafka_prefix, TACTFUL_DECISION_TOPIC_PREFIX=f"{kafka_prefix}.decisions."
        )
    )


def produce(topic: str, decisions: list[Decision]) -> None:
    producer = Producer({"bootstrap.servers": kafka_bootstrap()})
    for d in decisions:
        producer.produce(
            topic, key=d.customer_id.encode(), value=encode(d.to_record(), decision_schema(), decision_schema_id())
        )
    assert producer.flush(30) == 0


def history() -> list[Decision]:
    """Every customer suppressed on email for phone; the even ones released again."""
    made = [decision(customer=c, channel="email", category="phone", expires_at=None) for c in CUSTOMERS]
    made += [decision(Kind.RELEASE, customer=c, channel="email", category="phone") for c in CUSTOMERS[::2]]
    return made


async def suppressed_now(client: RedisClient, prefix: str) -> set[str]:
    return {c for c in CUSTOMERS if await is_suppressed(client, prefix, c, "email", "phone")}


def run_tactful(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("TACTFUL_")}
    return subprocess.run(
        [TACTFUL, *args],
        env={**clean, "TACTFUL_TOPOLOGIES": str(REPO / "topologies"), **env},
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )


KINDS = ["cluster", "tls"]


@pytest.mark.parametrize("kind", KINDS)
def test_the_mirror_consumer_writes_the_decision_topics_into_it(
    servers: Servers, kind: str, ns: tuple[str, str]
) -> None:
    s = settings(servers, kind, ns)
    produce(s.topics.decision("email"), history())
    expected = set(CUSTOMERS[1::2])

    async def run() -> None:
        client = redis_client(s.redis)
        source = KafkaDecisionLog(
            s.kafka, f"{s.topics.app_id}-redis-mirror", [s.topics.decision("email")], client_id="it"
        )
        mirror = MirrorConsumer(
            client,
            source,
            lambda raw: Decision.from_record(decode(raw, local_registry().resolve)),
            prefix=s.redis.prefix,
            registry=CollectorRegistry(),
        )
        mirror.start()
        try:

            async def caught_up() -> bool:
                return not mirror.pending and await suppressed_now(client, s.redis.prefix) == expected

            await until(caught_up, 60, "the mirror to write the decision topic", 0.2)
            assert await client.get(generation_key(s.redis.prefix)) == str(mirror.generation).encode()
            # The lookup for no category and the one for a category's neighbour agree with the writes.
            assert await is_suppressed(client, s.redis.prefix, CUSTOMERS[1], "email", None)
            assert not await is_suppressed(client, s.redis.prefix, CUSTOMERS[1], "email", "tablet")
            if isinstance(client, RedisCluster):
                # The customers' keys spread over the nodes, each customer's two keys on one.
                nodes = {client.get_node_from_key(channel_key(s.redis.prefix, c, "email")).name for c in expected}
                assert len(nodes) == 3, nodes
                for c in expected:
                    key = category_key(s.redis.prefix, c, "email", "phone")
                    assert (
                        client.keyslot(key)
                        == customer_slot(c)
                        == client.keyslot(channel_key(s.redis.prefix, c, "email"))
                    )
        finally:
            await mirror.stop()
            await client.aclose()

    asyncio.run(run())


@pytest.mark.parametrize("kind", KINDS)
def test_redis_rebuild_then_check(servers: Servers, kind: str, ns: tuple[str, str]) -> None:
    s = settings(servers, kind, ns)
    produce(s.topics.decision("email"), history())
    env = servers.env(
        kind, s.redis.prefix, TACTFUL_APP_ID=s.topics.app_id, TACTFUL_DECISION_TOPIC_PREFIX=s.topics.decision_prefix
    )

    async def leave_a_layout_1_key() -> None:
        client = redis_client(s.redis)
        try:
            await client.hset(f"{s.redis.prefix}:s:old:email", "t1|*", str(2**50))
        finally:
            await client.aclose()

    asyncio.run(leave_a_layout_1_key())
    rebuilt = run_tactful(env, "redis-rebuild", "--timeout", "60")
    assert rebuilt.returncode == 0, rebuilt.stderr
    released = len(CUSTOMERS[::2])
    assert f"read {len(CUSTOMERS) + released} decisions" in rebuilt.stdout
    assert f"cleared=1, set={len(CUSTOMERS)}, released={released}" in rebuilt.stdout

    yes = run_tactful(env, "check", CUSTOMERS[0], "email", "phone")
    assert (yes.returncode, yes.stdout.splitlines()[0]) == (
        0,
        f"yes: {CUSTOMERS[0]} may be marketed to on email for phone",
    )
    no = run_tactful(env, "check", CUSTOMERS[1], "email", "phone")
    assert no.returncode == 3, no.stderr
    assert no.stdout.splitlines()[0] == f"no: {CUSTOMERS[1]} is suppressed on email for phone"
    assert no.stdout.splitlines()[1].startswith("  t1: category phone until ")


@pytest.mark.parametrize("command", [["check", "c1", "email"], ["redis-rebuild", "--timeout", "5"]])
def test_a_wrong_password_is_one_line_and_exit_1(servers: Servers, command: list[str], ns: tuple[str, str]) -> None:
    env = {**servers.env("tls", ns[1]), "TACTFUL_REDIS_PASSWORD": "wrong"}
    done = run_tactful(env, *command)
    assert done.returncode == 1, (done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert servers.tls_url in lines[0] and "invalid username-password pair" in lines[0], lines[0]
    assert "wrong" not in lines[0].replace("invalid username-password pair", "")


def seed_events(cust: str, now: int) -> list[dict[str, object]]:
    """The seed scenario: a purchase, a failed activation, an unresolved support contact: suppress phone offers."""
    return [
        {
            "event_id": "p",
            "customer_id": cust,
            "type": "purchase",
            "occurred_at": now,
            "channel": "store",
            "attributes": {"category": "phone"},
        },
        {
            "event_id": "f",
            "customer_id": cust,
            "type": "activation_failed",
            "occurred_at": now + 60_000,
            "channel": "app",
        },
        {
            "event_id": "s",
            "customer_id": cust,
            "type": "support_contact",
            "occurred_at": now + 120_000,
            "channel": "call_center",
            "attributes": {"resolved": "false", "tz": "UTC"},
        },
    ]


@pytest.mark.parametrize("kind", KINDS)
def test_a_worker_mirrors_its_suppressions_into_it(services: None, servers: Servers, kind: str, tmp_path: Path) -> None:
    ns = Namespace(tmp_path)
    ns.extra_env.update(servers.env(kind, f"tactful-{ns.id}"))
    try:
        w = ns.worker().wait_ready()
        cust = f"seed-{ns.id}"
        ns.feed(seed_events(cust, int(time.time() * 1000)))
        ns.decisions("ads", lambda ds: len(ds) >= 1)
        wait_until(
            lambda: run_tactful(ns.env(), "check", cust, "ads", "phone").returncode == 3,
            60,
            f"tactful check to see {cust} suppressed on ads",
            every=1,
        )
        status, health = w.get("/health")
        assert status == 200 and health["redis_mirror"]["degraded"] is False, health
    finally:
        ns.cleanup()


def test_a_cluster_node_read_without_the_cluster_setting_says_so(servers: Servers, ns: tuple[str, str]) -> None:
    # A plain client gets MOVED for most keys; the line must say which setting is missing.
    env = {**servers.env("cluster", ns[1]), "TACTFUL_REDIS_CLUSTER": "false"}
    customer = next(c for c in CUSTOMERS if not 0 <= customer_slot(c) <= 5460)  # not served by the first node
    done = run_tactful(env, "check", customer, "email", "phone")
    assert done.returncode == 1, (done.stdout, done.stderr)
    [line] = done.stderr.strip().splitlines()
    assert "is a Redis Cluster node" in line and "TACTFUL_REDIS_CLUSTER" in line, line
