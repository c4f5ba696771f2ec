"""The mirror consumer against fakeredis and an in-memory decision log.

What the worker's mirror promises: offsets are committed only after their
writes landed, so a kill loses nothing and a queued release still lands; and
a Redis that lost its data (the generation key gone) is rebuilt from the
decision topics without anyone running a command.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

import fakeredis
import pytest
from prometheus_client import CollectorRegistry

from streams.codec.avro import DecisionDecoder, decision_schema, decision_schema_id, encode, local_registry
from streams.codec.avro import decode as avro_decode
from streams.decisions import Decision, Kind, forget_headers
from streams.errors import InfraError
from streams.mirror import (
    MirrorConsumer,
    channel_key,
    claim_generation,
    generation_key,
    read_generation,
    rebuild,
    wall_clock_ms,
)
from streams.mirror.consumer import Partition, Rebalance
from streams.mirror.generation import apply_then_read_generation
from streams.mirror.keys import apply_script, mirror_writes
from tests.mirror.support import FAST, HOUR, P, decision, run_async, until

A, B = ("decisions.email", 0), ("decisions.email", 1)
T = TypeVar("T")


@dataclass(frozen=True)
class Rec:
    topic: str
    partition: int
    offset: int
    value: bytes | None
    timestamp: int
    key: bytes | None = None
    headers: tuple[tuple[str, bytes], ...] = ()


def wire(d: Decision) -> bytes:
    return encode(d.to_record(), decision_schema(), decision_schema_id())


def unwire(value: bytes) -> Decision:
    return Decision.from_record(avro_decode(value, local_registry().resolve))


class Topics:
    """The decision topics and the mirror group's committed offsets: what survives a worker."""

    def __init__(self, *parts: Partition) -> None:
        self.records: dict[Partition, list[Rec]] = {part: [] for part in parts}
        self.committed: dict[Partition, tuple[int, str]] = {}
        self.history: list[Decision] = []  # every decision appended, in order

    def append(self, part: Partition, *decisions: Decision) -> None:
        for d in decisions:
            log = self.records[part]
            log.append(Rec(part[0], part[1], len(log), wire(d), wall_clock_ms()))
            self.history.append(d)

    def end(self) -> dict[Partition, int]:
        return {part: len(log) for part, log in self.records.items()}


class FakeLog:
    """One consumer's view of :class:`Topics`: its assignment and positions."""

    def __init__(self, topics: Topics, fail: bool = False) -> None:
        self.topics = topics
        self.listener: Rebalance | None = None
        self.positions: dict[Partition, int] = {}
        self.fail = fail
        self.on_fetched: Callable[[Sequence[Rec]], None] | None = None  # called with each non-empty fetch

    async def start(self, listener: Rebalance) -> None:
        self.listener = listener

    async def stop(self) -> None:
        self.listener = None

    async def assign(self, *parts: Partition) -> None:
        await until(lambda: self.listener is not None, what="the consumer to start")
        assert self.listener is not None
        await self.listener.assigned(parts)

    async def revoke(self, *parts: Partition) -> None:
        assert self.listener is not None
        await self.listener.revoked(parts)
        for part in parts:
            self.positions.pop(part, None)

    async def fetch(self, timeout_s: float, max_records: int) -> Sequence[Rec]:
        if self.fail:
            raise InfraError("broker down")
        out: list[Rec] = []
        for part, position in self.positions.items():
            taken = self.topics.records[part][position : position + max_records - len(out)]
            out += taken
            self.positions[part] = position + len(taken)
        if not out:
            await asyncio.sleep(0.001)
        elif self.on_fetched is not None:
            self.on_fetched(out)
        return out

    async def committed(self, partitions: Collection[Partition]) -> Mapping[Partition, tuple[int, str]]:
        return {part: self.topics.committed[part] for part in partitions if part in self.topics.committed}

    async def seek(self, positions: Mapping[Partition, int | None]) -> None:
        for part, offset in positions.items():
            self.positions[part] = 0 if offset is None else offset

    async def commit(self, offsets: Mapping[Partition, tuple[int, str]]) -> bool:
        self.topics.committed.update(offsets)
        return True

    async def behind(self, partitions: Collection[Partition]) -> Mapping[Partition, int | None]:
        return {part: len(self.topics.records[part]) - self.positions.get(part, 0) for part in partitions}


class Redis:
    """A fakeredis server that a test may flush, stop or replace by an empty one."""

    def __init__(self) -> None:
        self.server = fakeredis.FakeServer()
        self.client = fakeredis.FakeAsyncRedis(server=self.server)

    def restart_empty(self) -> None:
        """What a restart without persistence leaves: no keys, no scripts (fakeredis's own state)."""
        # In place, as FLUSHALL does: a connection made before the restart keeps its database
        # object, and would otherwise still read the old keys (and the old generation).
        with self.server.lock:  # fakeredis's own rule for changing a database
            for db in self.server.dbs.values():
                db.clear()
        self.server.script_cache.clear()

    async def dump(self, prefix: str = P) -> dict[str, dict[bytes, bytes]]:
        keys = sorted(await self.client.keys(f"{prefix}:s:*"))
        return {key.decode()[len(prefix) :]: await self.client.hgetall(key) for key in keys}

    async def expected(self, history: Sequence[Decision]) -> dict[str, dict[bytes, bytes]]:
        """What `tactful redis-rebuild` would write from the same decisions, under a scratch prefix."""
        await rebuild(self.client, history, prefix="scratch", now_ms=wall_clock_ms(), clear=True)
        return await self.dump("scratch")


def consumer(
    redis: Redis,
    log: FakeLog,
    registry: CollectorRegistry | None = None,
    decoder: DecisionDecoder | None = None,
) -> MirrorConsumer:
    return MirrorConsumer(
        redis.client,
        log,
        unwire if decoder is None else decoder,
        inert=None if decoder is None else decoder.inert,
        prefix=P,
        backoff=FAST,
        check_every_s=0.01,
        fetch_wait_s=0.01,
        max_records=3,
        registry=registry or CollectorRegistry(),
    )


@contextlib.asynccontextmanager
async def running(mirror: MirrorConsumer) -> AsyncIterator[MirrorConsumer]:
    mirror.start()
    try:
        yield mirror
    finally:
        await mirror.stop()


def killed(mirror: MirrorConsumer) -> None:
    """kill -9: the task is gone, with whatever it held; nothing is committed on the way out."""
    assert mirror._task is not None
    mirror._task.cancel()


async def mirrored(topics: Topics, redis: Redis) -> bool:
    return topics.committed.keys() == topics.records.keys() and all(
        topics.committed[part][0] == end for part, end in topics.end().items()
    )


def metric(registry: CollectorRegistry, name: str) -> float:
    return registry.get_sample_value(name) or 0.0


@run_async
async def test_offsets_are_committed_only_after_their_writes_landed() -> None:
    topics, redis = Topics(A, B), Redis()
    log = FakeLog(topics)
    async with running(consumer(redis, log)) as mirror:
        await log.assign(A, B)
        topics.append(A, decision(customer="a1"), decision(customer="a2", category="*"))
        topics.append(B, decision(customer="b1"), decision(Kind.RELEASE, customer="b1", expires_at=None))
        await until(lambda: mirrored(topics, redis), what="every record committed")
        token = await read_generation(redis.client, P)
        assert token is not None
        assert {meta for _, meta in topics.committed.values()} == {token}
        assert await redis.dump() == await redis.expected(topics.history)

        redis.server.connected = False
        topics.append(A, decision(customer="a3"))
        await until(lambda: mirror.degraded, what="degraded")
        await until(lambda: mirror.lag_seconds > 0, what="lag to show")
        assert mirror.pending == 1
        assert topics.committed[A][0] == 2  # the record is read, its write has not landed

        redis.server.connected = True
        await until(lambda: mirrored(topics, redis), what="the held record committed")
        assert not mirror.degraded
        assert mirror.pending == 0
        assert await redis.dump() == await redis.expected(topics.history)


@run_async
async def test_a_release_read_before_a_kill_lands_after_the_restart() -> None:
    topics, redis = Topics(A), Redis()
    first = FakeLog(topics)
    mirror = consumer(redis, first)
    mirror.start()
    await first.assign(A)
    topics.append(A, decision(customer="c1"), decision(customer="c2"))
    await until(lambda: mirrored(topics, redis), what="the suppressions committed")

    # Redis stops just as the release is read, so it is read but cannot land (stopped before,
    # the consumer could notice first and never fetch it).
    first.on_fetched = lambda _: setattr(redis.server, "connected", False)
    topics.append(A, decision(Kind.RELEASE, customer="c1", expires_at=None))
    await until(lambda: first.positions[A] == 3, what="the release to be read")
    await until(lambda: mirror.degraded, what="its write to fail")
    killed(mirror)
    redis.server.connected = True  # back, with its data

    registry = CollectorRegistry()
    second = FakeLog(topics)
    async with running(consumer(redis, second, registry)):
        await second.assign(A)
        await until(lambda: mirrored(topics, redis), what="the release committed")
        assert await redis.dump() == await redis.expected(topics.history)
        assert not await redis.client.exists(channel_key(P, "c1", "email"))  # no stale key
    assert metric(registry, "tactful_redis_mirror_rebuilds_total") == 0  # resumed, not replayed


@pytest.mark.parametrize("loss", ["flushall", "restart_empty"])
@run_async
async def test_a_redis_that_lost_its_data_is_rebuilt_without_a_command(
    loss: str, caplog: pytest.LogCaptureFixture
) -> None:
    topics, redis = Topics(A, B), Redis()
    log = FakeLog(topics)
    registry = CollectorRegistry()
    async with running(consumer(redis, log, registry)) as mirror:
        await log.assign(A, B)
        topics.append(A, decision(customer="a1"), decision(customer="a2"), decision(customer="a3"))
        topics.append(B, decision(customer="b1", channel="email", category="*"))
        topics.append(A, decision(Kind.RELEASE, customer="a2", expires_at=None))
        await until(lambda: mirrored(topics, redis), what="everything committed")
        first = await read_generation(redis.client, P)
        assert metric(registry, "tactful_redis_mirror_rebuilds_total") == 1  # the first build
        caplog.clear()

        with caplog.at_level(logging.WARNING, logger="streams.mirror.consumer"):
            if loss == "flushall":
                await redis.client.flushall()
            else:
                redis.server.connected = False
                await until(lambda: mirror.degraded, what="degraded")
                redis.restart_empty()
                redis.server.connected = True

            async def healed() -> bool:
                return bool(await redis.dump()) and await redis.dump() == await redis.expected(topics.history)

            await until(healed, what="the mirror rebuilt")
            await until(lambda: not mirror.rebuilding, what="the replay to reach the end")
        second = await read_generation(redis.client, P)
        assert second is not None and second != first
        assert metric(registry, "tactful_redis_mirror_rebuilds_total") == 2
        assert [r.message for r in caplog.records if "rebuilding" in r.message] == [
            f"Redis mirror rebuilding: replaying 2 decision-topic partitions from the beginning "
            f"(Redis had no mirror generation; generation {second})"
        ]
        await until(lambda: mirrored(topics, redis), what="the offsets committed again")
        assert {meta for _, meta in topics.committed.values()} == {second}


@run_async
async def test_a_worker_restarted_while_redis_was_down_rebuilds_when_it_comes_back_empty() -> None:
    topics, redis = Topics(A, B), Redis()
    first = FakeLog(topics)
    mirror = consumer(redis, first)
    mirror.start()
    await first.assign(A, B)
    topics.append(A, decision(customer="a1"), decision(customer="a2"))
    topics.append(B, decision(customer="b1"))
    await until(lambda: mirrored(topics, redis), what="committed")
    redis.server.connected = False
    topics.append(B, decision(customer="b2"))
    # Decisions are keyed by customer: a1's release is in a1's partition, after its suppression.
    topics.append(A, decision(Kind.RELEASE, customer="a1", expires_at=None))
    killed(mirror)

    second = FakeLog(topics)
    restarted = consumer(redis, second)
    async with running(restarted):
        await second.assign(A, B)
        await until(lambda: restarted.degraded, what="degraded while Redis is down")
        redis.restart_empty()
        redis.server.connected = True
        await until(lambda: mirrored(topics, redis), what="everything committed")
        assert await redis.dump() == await redis.expected(topics.history)
        assert not restarted.degraded


@run_async
async def test_decisions_appended_during_a_redis_outage_are_counted_pending_before_it_ends() -> None:
    topics, redis = Topics(A, B), Redis()
    log = FakeLog(topics)
    async with running(consumer(redis, log)) as mirror:
        await log.assign(A, B)
        topics.append(A, decision(customer="a1"))
        topics.append(B, decision(customer="b0"))
        await until(lambda: mirrored(topics, redis), what="committed")
        redis.server.connected = False
        await until(lambda: mirror.degraded, what="degraded while Redis is down")
        topics.append(A, decision(customer="a2"), decision(customer="a3"))
        topics.append(B, decision(customer="b1"))
        await until(lambda: mirror.pending == 3, what="the outage's decisions counted pending")
        assert mirror.degraded and mirror.lag_seconds > 0
        redis.server.connected = True
        await until(lambda: mirrored(topics, redis), what="everything committed")
        assert mirror.pending == 0


@run_async
async def test_two_consumers_healing_at_once_agree_and_keep_each_others_writes() -> None:
    topics, redis = Topics(A, B), Redis()
    logs = FakeLog(topics), FakeLog(topics)
    mirrors = consumer(redis, logs[0]), consumer(redis, logs[1])
    async with running(mirrors[0]), running(mirrors[1]):
        await logs[0].assign(A)
        await logs[1].assign(B)
        for i in range(10):
            topics.append(A, decision(customer=f"a{i}"))
            topics.append(B, decision(customer=f"b{i}"))
        await until(lambda: mirrored(topics, redis), what="committed")
        await redis.client.flushall()
        for i in range(10, 12):
            topics.append(A, decision(customer=f"a{i}"))
            topics.append(B, decision(customer=f"b{i}"))

        async def healed() -> bool:
            return await redis.dump() == await redis.expected(topics.history)

        await until(healed, what="both halves rebuilt")
        await until(lambda: mirrored(topics, redis), what="committed")
        assert mirrors[0].generation == mirrors[1].generation == await read_generation(redis.client, P)
        assert len(await redis.dump()) == 2 * 2 * 12


@run_async
async def test_a_partition_committed_under_an_old_generation_is_replayed_by_its_next_owner() -> None:
    topics, redis = Topics(A, B), Redis()
    logs = FakeLog(topics), FakeLog(topics)
    first = consumer(redis, logs[0])
    first.start()
    await logs[0].assign(A, B)
    topics.append(A, decision(customer="a1"))
    topics.append(B, decision(customer="b1"))
    await until(lambda: mirrored(topics, redis), what="committed")
    killed(first)
    await redis.client.flushall()
    # Another worker notices first and writes a new generation; the killed one's
    # partitions still carry the old token in their committed metadata.
    await claim_generation(redis.client, P)
    async with running(consumer(redis, logs[1])):
        await logs[1].assign(A, B)
        await until(lambda: redis.dump(), what="a rebuild")
        await until(lambda: mirrored(topics, redis), what="committed")
        assert await redis.dump() == await redis.expected(topics.history)


@run_async
async def test_a_revoked_partition_is_not_committed_and_its_batch_is_dropped() -> None:
    topics, redis = Topics(A), Redis()
    log = FakeLog(topics)
    async with running(consumer(redis, log)) as mirror:
        await log.assign(A)
        topics.append(A, decision(customer="a1"))
        await until(lambda: mirrored(topics, redis), what="committed")
        redis.server.connected = False
        topics.append(A, decision(customer="a2"))
        await until(lambda: mirror.pending == 1 and mirror.degraded, what="a batch held")
        await log.revoke(A)
        redis.server.connected = True
        await until(lambda: not mirror.degraded, what="recovered")
        assert mirror.pending == 0
        assert topics.committed[A][0] == 1
        assert not await redis.client.exists(channel_key(P, "a2", "email"))


@run_async
async def test_the_generation_is_claimed_once_by_racing_callers() -> None:
    redis = Redis()
    claims = await asyncio.gather(*(claim_generation(redis.client, P) for _ in range(5)))
    assert len({token for token, _ in claims}) == 1
    assert sum(created for _, created in claims) == 1
    assert await read_generation(redis.client, P) == claims[0][0]
    assert generation_key(P) == f"{P}:generation:2"


@run_async
async def test_the_generation_read_after_the_writes_tells_a_flush_apart() -> None:
    redis = Redis()
    token, _ = await claim_generation(redis.client, P)
    script = apply_script(redis.client)
    writes = list(mirror_writes([decision()], wall_clock_ms()))
    assert await apply_then_read_generation(redis.client, script, P, writes, wall_clock_ms()) == token
    await redis.client.flushall()
    assert await apply_then_read_generation(redis.client, script, P, writes, wall_clock_ms()) is None


@run_async
async def test_records_that_are_not_decisions_are_skipped_and_committed() -> None:
    topics, redis = Topics(A), Redis()
    topics.records[A].append(Rec(A[0], A[1], 0, b"not a decision", wall_clock_ms()))
    topics.records[A].append(Rec(A[0], A[1], 1, None, wall_clock_ms()))
    topics.append(A, decision(customer="a1", expires_at=wall_clock_ms() + HOUR))
    log = FakeLog(topics)
    async with running(consumer(redis, log)) as mirror:
        await log.assign(A)
        await until(lambda: mirrored(topics, redis), what="committed")
        assert mirror.skipped == 2
        assert await redis.dump() == await redis.expected(topics.history)


@run_async
async def test_decisions_that_change_nothing_are_passed_over_undecoded() -> None:
    """With the worker's decoder: ENGAGEs and ended suppressions are judged by their first
    bytes and never decoded; the mirror holds what it would hold had it decoded them all."""
    topics, redis = Topics(A, B), Redis()
    now = wall_clock_ms()
    inert = [
        decision(Kind.ENGAGE, customer="c1"),
        decision(customer="c2", expires_at=now - HOUR),
        decision(customer="c1", channel="sms", expires_at=now - 1),
    ]
    changes = [
        decision(customer="c1", expires_at=now + HOUR),
        decision(customer="c3", channel="sms", category=None, expires_at=now + HOUR),
        decision(Kind.RELEASE, customer="c3", channel="sms", category=None),
        decision(customer="c4", expires_at=now + HOUR),
    ]
    # c3's suppression and release in one partition, in order: across partitions the mirror
    # promises no order (decisions are keyed by customer, so a customer's are in one).
    topics.append(A, inert[0], changes[0], inert[1], changes[1], changes[2])
    topics.append(B, inert[2], changes[3])
    topics.records[B].append(Rec(B[0], B[1], 2, b"not a decision", wall_clock_ms()))
    decoded: list[bytes] = []

    class Counting(DecisionDecoder):
        def __call__(self, data: bytes | bytearray) -> Decision:
            decoded.append(bytes(data))
            return super().__call__(data)

    counting = Counting(local_registry().resolve, local_registry().resolve(decision_schema_id()))
    log = FakeLog(topics)
    async with running(consumer(redis, log, decoder=counting)) as mirror:
        await log.assign(A, B)
        await until(lambda: mirrored(topics, redis), what="committed")
        assert (mirror.passed_over, mirror.skipped) == (len(inert), 1)
        assert sorted(decoded) == sorted([*map(wire, changes), b"not a decision"])
        assert await redis.dump() == await redis.expected(topics.history)
        assert await redis.dump() == await redis.expected(changes)


@run_async
async def test_a_kafka_failure_degrades_and_recovers() -> None:
    topics, redis = Topics(A), Redis()
    log = FakeLog(topics, fail=True)
    registry = CollectorRegistry()
    async with running(consumer(redis, log, registry)) as mirror:
        await log.assign(A)
        await until(lambda: mirror.degraded, what="degraded")
        assert metric(registry, "tactful_redis_mirror_errors_total") >= 1
        log.fail = False
        topics.append(A, decision())
        await until(lambda: mirrored(topics, redis), what="committed")
        await until(lambda: not mirror.degraded, what="recovered")


@run_async
async def test_a_first_read_next_to_an_existing_generation_is_not_counted_as_a_rebuild() -> None:
    topics, redis = Topics(A), Redis()
    token, _ = await claim_generation(redis.client, P)
    topics.append(A, decision(customer="a1"))
    log = FakeLog(topics)
    registry = CollectorRegistry()
    async with running(consumer(redis, log, registry)) as mirror:
        await log.assign(A)
        await until(lambda: mirrored(topics, redis), what="committed")
        assert mirror.generation == token
        assert await redis.dump() == await redis.expected(topics.history)
    assert metric(registry, "tactful_redis_mirror_rebuilds_total") == 0


@run_async
async def test_a_forget_record_deletes_the_customers_keys_in_topic_order() -> None:
    """Contract section 9: an erased customer's suppressions go at the forget record, not before
    or after; a suppression decided after the erase stands; other customers are untouched."""
    topics, redis = Topics(A), Redis()
    later = wall_clock_ms() + HOUR
    before = [decision(customer="c1", channel="email", expires_at=later), decision(customer="c1", channel="sms")]
    topics.append(A, *before, decision(customer="c2", expires_at=later))
    forget_at = len(topics.records[A])
    topics.records[A].append(Rec(A[0], A[1], forget_at, None, wall_clock_ms(), b"c1", forget_headers(wall_clock_ms())))
    after = decision(customer="c1", channel="push", expires_at=later)
    topics.append(A, after)
    log = FakeLog(topics)
    async with running(consumer(redis, log)) as mirror:
        await log.assign(A)
        await until(lambda: mirrored(topics, redis), what="committed")
        assert mirror.skipped == 0
        kept = [d for d in topics.history if d not in before]
        assert await redis.dump() == await redis.expected(kept)


@run_async
async def test_a_worker_of_layout_2_replays_a_layout_1_mirror_into_its_own_keys(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The layout change is the self-healing path: no generation of layout 2 yet, so every partition replays."""
    topics, redis = Topics(A, B), Redis()
    topics.append(A, decision(customer="a1"), decision(customer="a2"))
    topics.append(B, decision(customer="b1", category="*"))
    topics.append(A, decision(Kind.RELEASE, customer="a2", expires_at=None))
    # What a layout-1 worker left: its token, offsets committed under it at the end, keys without a hash tag.
    await redis.client.set(f"{P}:generation", "1795963179009-6093bf1a7a56")
    topics.committed.update({part: (end, "1795963179009-6093bf1a7a56") for part, end in topics.end().items()})
    await redis.client.hset(f"{P}:s:a1:email:phone", "t1", str(wall_clock_ms() + HOUR))
    registry = CollectorRegistry()
    log = FakeLog(topics)
    with caplog.at_level(logging.WARNING, logger="streams.mirror.consumer"):
        async with running(consumer(redis, log, registry)):
            await log.assign(A, B)
            token = await until_value(lambda: read_generation(redis.client, P))

            async def layout_2_written() -> bool:
                dump = await redis.dump()
                return {k: v for k, v in dump.items() if "{" in k} == await redis.expected(topics.history)

            await until(layout_2_written, what="the layout-2 keys")
            await until(lambda: all(meta == token for _, meta in topics.committed.values()), what="recommitted")
    assert metric(registry, "tactful_redis_mirror_rebuilds_total") == 1
    assert any("replaying 2 decision-topic partitions" in r.message for r in caplog.records)
    # Layout 1's token and keys are left alone: workers of layout 1 may still run (a rolling upgrade),
    # and its keys expire by themselves.
    assert await redis.client.get(f"{P}:generation") == b"1795963179009-6093bf1a7a56"
    assert await redis.client.exists(f"{P}:s:a1:email:phone")


async def until_value(read: Callable[[], Awaitable[T | None]]) -> T:
    found: list[T] = []

    async def check() -> bool:
        value = await read()
        if value is not None:
            found.append(value)
        return value is not None

    await until(check, what="a value")
    return found[-1]


@run_async
async def test_records_a_registry_outage_could_not_decode_are_read_again() -> None:
    """A decision whose schema the registry cannot give yet is retried, never passed over."""
    topics, redis = Topics(A, B), Redis()
    log = FakeLog(topics)
    outage = {"calls": 3}

    def flaky(value: bytes) -> Decision:
        if outage["calls"]:
            outage["calls"] -= 1
            raise InfraError("schema registry at http://registry: unreachable")
        return unwire(value)

    mirror = MirrorConsumer(
        redis.client,
        log,
        flaky,
        prefix=P,
        backoff=FAST,
        check_every_s=0.01,
        fetch_wait_s=0.01,
        max_records=3,
        registry=CollectorRegistry(),
    )
    async with running(mirror):
        await log.assign(A, B)
        topics.append(A, decision(customer="a1"), decision(customer="a2"))
        topics.append(B, decision(customer="b1", channel="email", category="*"))
        await until(lambda: mirrored(topics, redis), what="everything committed")
    assert outage["calls"] == 0
    assert await redis.dump() == await redis.expected(topics.history)
