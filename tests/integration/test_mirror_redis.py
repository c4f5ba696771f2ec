"""The Redis suppression mirror against a real redis-server (and Kafka for redis-rebuild).

Every test here fails, never skips, when Redis or Kafka cannot be reached:
a green run must mean the mirror was tested against the real thing.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import statistics
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import redis
import redis.asyncio as aioredis
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic
from prometheus_client import CollectorRegistry
from redis.backoff import NoBackoff
from redis.retry import Retry

from streams.codec.avro import decision_schema, decision_schema_id, encode, local_registry
from streams.decisions import Decision, Kind
from streams.errors import ConfigError
from streams.live.decision_topics import ReadStats, read_decision_topics
from streams.mirror import (
    Backoff,
    SuppressionMirror,
    clear_mirror,
    explain,
    is_suppressed,
    rebuild,
    wall_clock_ms,
)
from tests.mirror.support import HOUR, decision, run_async
from tests.support import until

try:  # tests/integration imported as a package
    from .services import kafka_bootstrap, redis_url
except ImportError:  # tests/integration put on sys.path by pytest's default import mode
    from services import kafka_bootstrap, redis_url

pytestmark = pytest.mark.integration


@pytest.fixture
def prefix() -> Iterator[str]:
    """A prefix of this test's own, so tests never see each other's keys (or a demo's); cleared after."""
    name = f"test{uuid.uuid4().hex[:12]}"
    yield name

    async def clear() -> None:
        async with aioredis.Redis.from_url(redis_url()) as client:
            await clear_mirror(client, name)

    asyncio.run(clear())


@pytest.fixture(scope="module")
def shared_redis() -> str:
    """The URL of the Redis started by `make up`; fails the test when it does not answer."""
    url = redis_url()
    try:
        with redis.Redis.from_url(url, socket_connect_timeout=2) as client:
            client.ping()
    except redis.RedisError as exc:
        raise AssertionError(f"Redis at {url} does not answer (run `make up`): {exc}") from exc
    return url


@contextlib.asynccontextmanager
async def mirror_on(url: str, prefix: str, **options: Any) -> AsyncIterator[SuppressionMirror]:
    async with aioredis.Redis.from_url(url, **options.pop("client", {})) as client:
        options.setdefault("registry", CollectorRegistry())
        mirror = SuppressionMirror(client, prefix=prefix, **options)
        mirror.start()
        try:
            yield mirror
        finally:
            await mirror.stop()


# --- real expiry and the documented lookups ------------------------------------------


@run_async
async def test_keys_expire_at_the_latest_active_suppression(shared_redis: str, prefix: str) -> None:
    async with mirror_on(shared_redis, prefix) as mirror:
        client = mirror.client
        now = wall_clock_ms()
        mirror.submit(
            [decision(topology="brief", expires_at=now + 1_500), decision(topology="long", expires_at=now + 60_000)]
        )
        await mirror.flush(5)
        for key in (f"{prefix}:s:{{c1}}:email:phone", f"{prefix}:s:{{c1}}:email"):
            assert await client.execute_command("PEXPIRETIME", key) == now + 60_000
            assert 55_000 < await client.pttl(key) <= 60_000

        mirror.submit([decision(Kind.RELEASE, topology="long", expires_at=None)])
        await mirror.flush(5)
        for key in (f"{prefix}:s:{{c1}}:email:phone", f"{prefix}:s:{{c1}}:email"):
            assert await client.execute_command("PEXPIRETIME", key) == now + 1_500
        assert await is_suppressed(client, prefix, "c1", "email", "phone")

        # Redis's own clock ends it: nothing in tactful deletes the key, and not before its time.
        keys = (f"{prefix}:s:{{c1}}:email:phone", f"{prefix}:s:{{c1}}:email")

        async def expired() -> bool:
            return not await is_suppressed(client, prefix, "c1", "email", "phone")

        await until(expired, 10, "Redis to expire the suppression", 0.02)
        assert wall_clock_ms() >= now + 1_500
        assert not await is_suppressed(client, prefix, "c1", "email", "phone")
        assert not await is_suppressed(client, prefix, "c1", "email", None)
        assert await client.exists(*keys) == 0


@run_async
async def test_the_one_line_lookups_of_the_docs_work_as_written(shared_redis: str, prefix: str) -> None:
    async with mirror_on(shared_redis, prefix) as mirror:
        mirror.submit(
            [
                decision(customer="c1", channel="email", category="phone"),
                decision(customer="c2", channel="ads", category="*"),
            ]
        )
        await mirror.flush(5)
        r = mirror.client
        p = prefix
        # docs/redis-mirror.md, "Asking the mirror", letter for letter.
        assert await r.execute_command("EXISTS", f"{p}:s:{{c1}}:email:phone", f"{p}:s:{{c1}}:email:*") > 0
        assert await r.execute_command("EXISTS", f"{p}:s:{{c1}}:email:tablet", f"{p}:s:{{c1}}:email:*") == 0
        assert await r.execute_command("EXISTS", f"{p}:s:{{c1}}:email") > 0
        assert await r.execute_command("EXISTS", f"{p}:s:{{c1}}:sms") == 0
        assert await r.execute_command("EXISTS", f"{p}:s:{{c2}}:ads:tablet", f"{p}:s:{{c2}}:ads:*") > 0
        assert await r.execute_command("EXISTS", f"{p}:s:{{c2}}:ads") > 0
        expires = int((await r.hgetall(f"{p}:s:{{c2}}:ads:*"))[b"t1"])
        assert await explain(r, p, "c2", "ads", "tablet") == [("t1", "*", expires)]


# --- a real outage -------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedisProcess:
    """A redis-server of this test's own on a free port, which the test may stop and start again."""

    def __init__(self) -> None:
        binary = shutil.which("redis-server")
        assert binary, "redis-server is not installed (`make fetch-kafka` installs it)"
        self.binary = binary
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while True:
            try:
                with redis.Redis(port=self.port, socket_connect_timeout=0.2) as client:
                    client.ping()
                return
            except redis.ConnectionError:
                assert time.monotonic() < deadline, f"redis-server did not start on port {self.port}"
                time.sleep(0.02)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)
            self.proc = None


@pytest.fixture
def own_redis() -> Iterator[RedisProcess]:
    server = RedisProcess()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@run_async
async def test_every_write_submitted_during_an_outage_lands_in_order(own_redis: RedisProcess) -> None:
    # The client's own retries are off so the mirror's backoff and degraded flag are what is tested.
    client_options = {"retry": Retry(NoBackoff(), 0), "socket_connect_timeout": 0.5, "socket_timeout": 0.5}
    registry = CollectorRegistry()
    async with mirror_on(
        own_redis.url, "tactful", client=client_options, backoff=Backoff(0.05, 0.4), batch_size=4, registry=registry
    ) as mirror:
        mirror.submit([decision(customer="before")])
        await mirror.flush(5)

        own_redis.stop()
        now = wall_clock_ms()
        during = []
        for i in range(10):
            during += [
                decision(customer=f"c{i}", expires_at=now + HOUR),
                decision(Kind.RELEASE, customer=f"c{i}", expires_at=None),
                decision(customer=f"c{i}", expires_at=now + 2 * HOUR),
                decision(customer=f"d{i}", channel="ads", category="*"),
                decision(customer=f"e{i}"),
                decision(Kind.RELEASE, customer=f"e{i}", expires_at=None),
            ]
        assert mirror.submit(during) == 60
        await until(
            lambda: (registry.get_sample_value("tactful_redis_mirror_errors_total") or 0) >= 3, 10, "three errors", 0.01
        )
        assert mirror.degraded
        assert mirror.pending == 60
        assert mirror.lag_seconds > 0.05
        assert (registry.get_sample_value("tactful_redis_mirror_lag_seconds") or 0) > 0.05

        own_redis.start()  # empty: no persistence, and the script cache is gone too
        await mirror.flush(30)
        assert not mirror.degraded
        assert mirror.pending == 0
        r = mirror.client
        for i in range(10):
            assert await explain(r, "tactful", f"c{i}", "email", "phone") == [("t1", "phone", now + 2 * HOUR)]
            assert await is_suppressed(r, "tactful", f"d{i}", "ads", "anything")
            assert not await is_suppressed(r, "tactful", f"e{i}", "email", None)
        # "before" went with the restart (no persistence): what `tactful redis-rebuild` is for.
        assert len(await r.keys("tactful:s:*")) == 40
        assert registry.get_sample_value("tactful_redis_mirror_writes_total", {"op": "set"}) == 41
        assert registry.get_sample_value("tactful_redis_mirror_writes_total", {"op": "release"}) == 20


# --- latency ---------------------------------------------------------------------------------


@run_async
async def test_lookup_latency_is_printed(shared_redis: str, prefix: str, capsys: pytest.CaptureFixture[str]) -> None:
    async with mirror_on(shared_redis, prefix) as mirror:
        mirror.submit(decision(customer=f"c{i}", category="*" if i % 3 else "phone") for i in range(1_000))
        await mirror.flush(30)
        r = mirror.client
        for i in range(100):  # warm the connection pool and the server
            await is_suppressed(r, prefix, f"c{i}", "email", "tablet")
        took = []
        hits = 0
        for i in range(2_000):
            category = None if i % 4 == 0 else "tablet"
            start = time.perf_counter_ns()
            hits += await is_suppressed(r, prefix, f"c{i % 1_500}", "email", category)
            took.append((time.perf_counter_ns() - start) / 1000)
        took.sort()
        with capsys.disabled():
            print(
                f"\nis_suppressed x2000 (one EXISTS, redis-py asyncio, loopback): "
                f"p50 {statistics.median(took):.0f} µs, p99 {took[int(len(took) * 0.99)]:.0f} µs, "
                f"max {took[-1]:.0f} µs, {hits} suppressed"
            )
        assert hits > 0


# --- redis-rebuild from Kafka ----------------------------------------------------------------


@pytest.fixture
def decision_topic() -> Iterator[str]:
    """A fresh two-partition topic on the local broker, deleted afterwards."""
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap()})
    topic = f"tactful.test.mirror.{uuid.uuid4().hex[:12]}"
    admin.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1)])[topic].result(30)
    try:
        yield topic
    finally:
        admin.delete_topics([topic])[topic].result(30)


def wire(d: Decision) -> bytes:
    return encode(d.to_record(), decision_schema(), decision_schema_id())


@run_async
async def test_rebuild_from_the_decision_topic(shared_redis: str, prefix: str, decision_topic: str) -> None:
    now = wall_clock_ms()
    history = [  # in the order a worker would have made them
        decision(customer="c", effective_at=now - 5 * HOUR, expires_at=now - HOUR),  # long over
        decision(customer="a", effective_at=now - 3_000, expires_at=now + HOUR),
        decision(Kind.RELEASE, customer="a", effective_at=now - 2_000, expires_at=None),
        decision(customer="b", category="*", effective_at=now - 1_000, expires_at=now + HOUR),
    ]
    producer = Producer({"bootstrap.servers": kafka_bootstrap()})
    for d in history:
        producer.produce(decision_topic, key=d.customer_id.encode(), value=wire(d))
    producer.produce(decision_topic, key=b"a", value=b"not a decision")
    assert producer.flush(30) == 0

    stats = ReadStats()
    read = await asyncio.to_thread(
        read_decision_topics,
        {"bootstrap.servers": kafka_bootstrap()},
        [decision_topic],
        local_registry().resolve,
        60,
        stats=stats,
    )
    assert [d.decision_id for d in read] == [d.decision_id for d in history]
    assert (stats.records, stats.skipped, dict(stats.reasons)) == (5, 1, {"malformed": 1})

    async with aioredis.Redis.from_url(shared_redis) as client:
        await client.hset(f"{prefix}:s:stale:email", "t1|*", str(now + HOUR))
        result = await rebuild(client, read, prefix=prefix, now_ms=now, clear=True)
        assert (result.cleared, result.set, result.released, result.ignored) == (1, 2, 1, 1)
        assert not await is_suppressed(client, prefix, "a", "email", "phone")
        assert await is_suppressed(client, prefix, "b", "email", "tablet")
        assert not await is_suppressed(client, prefix, "c", "email", None)
        assert not await is_suppressed(client, prefix, "stale", "email", None)


def test_a_missing_decision_topic_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        read_decision_topics(
            {"bootstrap.servers": kafka_bootstrap()},
            [f"tactful.test.absent.{uuid.uuid4().hex[:8]}"],
            local_registry().resolve,
            30,
        )
