"""The worker's Redis mirror heals itself: kill -9 during an outage, a restart without persistence, FLUSHALL.

Each test runs real `tactful worker` processes against the shared broker and
a redis-server of its own (no persistence, in a temp folder), which it may
stop, pause, empty or flush: the shared Redis on 16379 is never touched.
What the mirror must hold is computed from the decision topics the way
`tactful redis-rebuild` would write it, into a scratch prefix of the same
Redis; nobody runs `redis-rebuild`.
"""

from __future__ import annotations

import asyncio
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import redis.asyncio as aioredis

from streams.live.codecs import resolver
from streams.live.decision_topics import read_decision_topics
from streams.live.topics import channels
from streams.mirror import channel_key, generation_key, rebuild, wall_clock_ms
from streams.topology import load_folder
from tests.integration.conftest import REPO, Namespace, free_port, wait_until
from tests.integration.services import kafka_bootstrap

HEAL_S = 60  # a restarted worker's mirror joins its group, replays the topics and writes Redis within this


class OwnRedis:
    """A redis-server of this test's own: no persistence, its files in a temp folder."""

    def __init__(self, folder: Path) -> None:
        binary = shutil.which("redis-server")
        assert binary, "redis-server is not installed"
        self.binary = binary
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, socket_timeout=5, socket_connect_timeout=1)

    def start(self) -> None:
        args = ["--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        args += ["--dir", str(self.folder)]
        self.proc = subprocess.Popen([self.binary, *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        def answers() -> bool:
            try:
                with self.client() as c:
                    return bool(c.ping())
            except redis.ConnectionError:
                return False

        wait_until(answers, 10, f"redis-server on port {self.port}", every=0.02)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGCONT)  # in case a test paused it
            self.proc.terminate()
            self.proc.wait(10)
            self.proc = None

    def pause(self) -> None:
        """Redis stops answering but keeps its data: an outage without a loss."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[OwnRedis]:
    server = OwnRedis(tmp_path / "redis")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def ns(services: None, tmp_path: Path, own_redis: OwnRedis, request: pytest.FixtureRequest) -> Iterator[Namespace]:
    space = Namespace(tmp_path, TACTFUL_REDIS_URL=own_redis.url)
    yield space
    failed = getattr(request.node, "rep_call", None)
    if failed is not None and failed.failed:
        for w in space.workers:
            print(f"--- {w.name} log tail ---\n{w.tail(80)}")
    space.cleanup()


def trouble(cust: str, now: int) -> list[dict[str, Any]]:
    """post_purchase_friction's sequence: a phone suppression on ads, email and sms."""
    return [
        {
            "event_id": f"{cust}-p",
            "customer_id": cust,
            "type": "purchase",
            "occurred_at": now,
            "channel": "web",
            "attributes": {"category": "phone"},
        },
        {"event_id": f"{cust}-f", "customer_id": cust, "type": "activation_failed", "occurred_at": now + 60_000},
        {
            "event_id": f"{cust}-s",
            "customer_id": cust,
            "type": "support_contact",
            "occurred_at": now + 120_000,
            "attributes": {"resolved": "false"},
        },
    ]


def fixed(cust: str, at: int) -> dict[str, Any]:
    """The activation worked after all: the suppression is released."""
    return {"event_id": f"{cust}-ok", "customer_id": cust, "type": "activation_succeeded", "occurred_at": at}


Dump = dict[str, dict[bytes, bytes]]


def dump(client: redis.Redis, prefix: str) -> Dump:
    keys = sorted(client.scan_iter(match=f"{prefix}:s:*", count=1000))
    return {key.decode()[len(prefix) :]: client.hgetall(key) for key in keys}


def expected(ns: Namespace, server: OwnRedis) -> Dump:
    """What redis-rebuild would write from the decision topics, under a scratch prefix of the same Redis."""
    settings = ns.settings()
    catalog = load_folder(REPO / "topologies")
    topics = [settings.topics.decision(ch) for ch in channels(catalog)]
    decisions = read_decision_topics({"bootstrap.servers": kafka_bootstrap()}, topics, resolver(settings), 60)
    scratch = f"{ns.redis_prefix}-expected"

    async def write() -> None:
        async with aioredis.Redis.from_url(server.url) as client:
            await rebuild(client, decisions, prefix=scratch, now_ms=wall_clock_ms(), clear=True)

    asyncio.run(write())
    with server.client() as client:
        return dump(client, scratch)


def mirrored(ns: Namespace, server: OwnRedis, at_least: int) -> bool:
    """The mirror holds exactly what the decision topics say (and at least `at_least` keys)."""
    with server.client() as client:
        found = dump(client, ns.redis_prefix)
    return len(found) >= at_least and found == expected(ns, server)


def suppressed_keys(customers: list[str]) -> int:
    return len(customers) * 3 * 2  # ads, email, sms; a category hash and a channel hash each


@pytest.mark.parametrize("outage", ["restart_empty", "paused"])
def test_kill_during_a_redis_outage_loses_no_suppression_and_leaves_no_stale_key(
    ns: Namespace, own_redis: OwnRedis, outage: str
) -> None:
    first = ns.worker("first").wait_ready()
    now = int(time.time() * 1000)
    kept = [f"k{i}-{ns.id}" for i in range(6)]
    ns.feed(event for cust in kept for event in trouble(cust, now))
    wait_until(lambda: mirrored(ns, own_redis, suppressed_keys(kept)), HEAL_S, "the suppressions mirrored", every=1)
    before = ns.end_offsets(ns.settings().topics.decision("ads"))

    # Redis goes away; decisions keep reaching their channels, the mirror cannot write them.
    if outage == "restart_empty":
        own_redis.stop()
    else:
        own_redis.pause()
    added = [f"n{i}-{ns.id}" for i in range(4)]
    released = kept[:3]
    during = [event for cust in added for event in trouble(cust, now)]
    during += [fixed(cust, now + 180_000) for cust in released]
    ns.feed(during)
    ns.wait_committed(3 * len(kept) + len(during))
    wait_until(
        lambda: ns.end_offsets(ns.settings().topics.decision("ads")) >= before + len(added) + len(released),
        30,
        "the outage's decisions on the ads topic",
    )
    wait_until(lambda: first.get("/health")[1]["status"] == "degraded", 30, "/health to say degraded")
    # Pending counts what the mirror has fetched or knows it is behind by: the next fetch after the failure.
    wait_until(lambda: first.get("/health")[1]["redis_mirror"]["pending"] > 0, 30, "/health to count pending")
    health = first.get("/health")[1]["redis_mirror"]
    assert health["degraded"] and health["pending"] > 0, health
    wait_until(
        lambda: first.metrics().get('tactful_worker_degraded_total{cause="redis"}') == 1, 10, "the degraded gauge"
    )

    first.stop(kill=True)
    second = ns.worker("second").wait_ready()  # while Redis is still down
    if outage == "restart_empty":
        own_redis.start()  # on the same port, empty
    else:
        own_redis.resume()  # with its data: the releases read before the kill must still land

    started = time.monotonic()
    wait_until(lambda: mirrored(ns, own_redis, suppressed_keys(kept[3:] + added)), HEAL_S, "the mirror healed", every=1)
    print(f"\nmirror healed {time.monotonic() - started:.1f}s after Redis came back ({outage})")
    with own_redis.client() as client:
        assert client.exists(generation_key(ns.redis_prefix))
        for cust in released:
            assert not client.exists(channel_key(ns.redis_prefix, cust, "ads")), f"stale key of {cust}"
    wait_until(lambda: second.get("/health")[1]["status"] == "ok", 30, "/health ok again")
    rebuilds = second.metrics().get("tactful_redis_mirror_rebuilds_total", 0)
    assert rebuilds == (1 if outage == "restart_empty" else 0)


@pytest.mark.parametrize("workers", [1, 2])
def test_flushall_is_healed_without_a_command(ns: Namespace, own_redis: OwnRedis, workers: int) -> None:
    """With two workers the group splits the decision topics between their mirrors: both heal their part."""
    running = [ns.worker(f"w{i}") for i in range(workers)]
    for w in running:
        w.wait_ready()
    now = int(time.time() * 1000)
    customers = [f"f{i}-{ns.id}" for i in range(8)]
    ns.feed(event for cust in customers for event in trouble(cust, now))
    ns.feed([fixed(customers[0], now + 180_000)])
    wait_until(
        lambda: mirrored(ns, own_redis, suppressed_keys(customers[1:])), HEAL_S, "the suppressions mirrored", every=1
    )

    def rebuilds() -> float:
        return sum(w.metrics().get("tactful_redis_mirror_rebuilds_total", 0) for w in running)

    before = rebuilds()
    with own_redis.client() as client:
        token = client.get(generation_key(ns.redis_prefix))
        assert token is not None
        client.flushall()
    # Decisions keep coming while the mirror heals.
    later = [f"g{i}-{ns.id}" for i in range(3)]
    ns.feed(event for cust in later for event in trouble(cust, now))

    started = time.monotonic()
    wait_until(
        lambda: mirrored(ns, own_redis, suppressed_keys(customers[1:] + later)), HEAL_S, "the mirror healed", every=1
    )
    print(f"\nmirror healed {time.monotonic() - started:.1f}s after FLUSHALL ({workers} workers)")
    with own_redis.client() as client:
        renewed = client.get(generation_key(ns.redis_prefix))
    assert renewed is not None and renewed != token
    assert rebuilds() >= before + 1
    assert any("Redis mirror rebuilding" in w.tail(200) for w in running)
    for w in running:
        wait_until(lambda w=w: w.get("/health")[1]["status"] == "ok", 30, f"{w.name}'s /health ok again")
