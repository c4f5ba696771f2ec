"""The Redis suppression mirror against fakeredis (with Lua through lupa): layout, lookups, outages, rebuild."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any

import fakeredis
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from streams.codec.avro import decision_schema, decision_schema_id, encode, local_registry
from streams.decisions import Decision, Kind, Status
from streams.errors import ConfigError, MirrorUnavailable
from streams.live.mirror import (
    Backoff,
    MirrorWrite,
    ReadStats,
    SuppressionMirror,
    apply_script,
    apply_writes,
    category_key,
    channel_key,
    decisions_from_partitions,
    explain,
    is_suppressed,
    rebuild,
    wall_clock_ms,
)
from tests.live.support import HOUR, decision, run_async

P = "tactful"
FAST = Backoff(initial_s=0.001, max_s=0.01)


class Harness:
    """A fake Redis server, a client on it, and a started mirror with its own metrics registry."""

    def __init__(self, *, batch_size: int = 256, clock: Callable[[], int] = wall_clock_ms, **client: Any) -> None:
        self.server = fakeredis.FakeServer()
        self.client = fakeredis.FakeAsyncRedis(server=self.server, **client)
        self.registry = CollectorRegistry()
        self.mirror = SuppressionMirror(
            self.client, prefix=P, clock=clock, backoff=FAST, batch_size=batch_size, registry=self.registry
        )

    async def apply(self, decisions: Iterable[Decision]) -> None:
        self.mirror.submit(decisions)
        await self.mirror.flush(5)

    async def suppressed(self, customer: str, channel: str, category: str | None) -> bool:
        return await is_suppressed(self.client, P, customer, channel, category)

    async def expiry(self, key: str) -> int:
        """PEXPIRETIME: the absolute expiry the mirror set (-2 when the key is gone)."""
        return int(await self.client.execute_command("PEXPIRETIME", key))

    async def dump(self) -> dict[bytes, dict[bytes, bytes]]:
        return {key: await self.client.hgetall(key) for key in sorted(await self.client.keys(f"{P}:s:*"))}

    def metric(self, name: str, **labels: str) -> float:
        return self.registry.get_sample_value(name, labels) or 0.0


@contextlib.asynccontextmanager
async def started(harness: Harness) -> AsyncIterator[Harness]:
    """The harness with its mirror's run loop going."""
    harness.mirror.start()
    try:
        yield harness
    finally:
        await harness.mirror.stop()


async def until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.001)


# --- layout and lookups -----------------------------------------------------------


@run_async
async def test_suppress_blocks_its_category_and_the_no_category_lookup_only() -> None:
    h = Harness()
    async with started(h):
        await h.apply([decision(customer="c1", channel="email", category="phone")])
        assert await h.suppressed("c1", "email", "phone")
        assert await h.suppressed("c1", "email", None)
        assert not await h.suppressed("c1", "email", "tablet")
        assert not await h.suppressed("c1", "sms", "phone")
        assert not await h.suppressed("c1", "sms", None)
        assert not await h.suppressed("c2", "email", "phone")


@run_async
async def test_all_categories_suppression_blocks_every_category_of_that_channel() -> None:
    h = Harness()
    async with started(h):
        await h.apply([decision(category="*")])
        assert await h.suppressed("c1", "email", "phone")
        assert await h.suppressed("c1", "email", "anything")
        assert await h.suppressed("c1", "email", None)
        assert not await h.suppressed("c1", "push", "phone")


@run_async
async def test_keys_fields_and_expiry_are_the_documented_layout() -> None:
    h = Harness()
    async with started(h):
        expires = wall_clock_ms() + HOUR
        await h.apply([decision(customer="c1", channel="email", category="phone", topology="t1", expires_at=expires)])
        assert await h.dump() == {
            b"tactful:s:c1:email": {b"t1|phone": str(expires).encode()},
            b"tactful:s:c1:email:phone": {b"t1": str(expires).encode()},
        }
        assert await h.expiry("tactful:s:c1:email") == expires
        assert await h.expiry("tactful:s:c1:email:phone") == expires


@run_async
async def test_release_removes_both_hashes() -> None:
    h = Harness()
    async with started(h):
        await h.apply([decision(), decision(Kind.RELEASE, expires_at=None)])
        assert not await h.suppressed("c1", "email", "phone")
        assert not await h.suppressed("c1", "email", None)
        assert await h.dump() == {}


@run_async
async def test_releasing_one_topology_keeps_the_other_and_expiry_drops_to_it() -> None:
    h = Harness()
    async with started(h):
        now = wall_clock_ms()
        await h.apply(
            [decision(topology="short", expires_at=now + HOUR), decision(topology="long", expires_at=now + 2 * HOUR)]
        )
        assert await h.expiry("tactful:s:c1:email:phone") == now + 2 * HOUR
        assert await h.expiry("tactful:s:c1:email") == now + 2 * HOUR

        await h.apply([decision(Kind.RELEASE, topology="long", expires_at=None)])
        assert await h.suppressed("c1", "email", "phone")
        assert await h.expiry("tactful:s:c1:email:phone") == now + HOUR
        assert await h.expiry("tactful:s:c1:email") == now + HOUR
        assert await explain(h.client, P, "c1", "email", "phone") == [("short", "phone", now + HOUR)]


@run_async
async def test_release_of_another_category_leaves_the_channel_suppressed_by_the_rest() -> None:
    h = Harness()
    async with started(h):
        await h.apply([decision(category="phone"), decision(category="tablet")])
        await h.apply([decision(Kind.RELEASE, category="phone", expires_at=None)])
        assert not await h.suppressed("c1", "email", "phone")
        assert await h.suppressed("c1", "email", "tablet")
        assert await h.suppressed("c1", "email", None)
        assert [row[:2] for row in await explain(h.client, P, "c1", "email", None)] == [("t1", "tablet")]


@run_async
async def test_resuppressing_extends_and_never_shortens() -> None:
    h = Harness()
    async with started(h):
        now = wall_clock_ms()
        await h.apply([decision(expires_at=now + HOUR), decision(expires_at=now + 3 * HOUR)])
        await h.apply([decision(expires_at=now + 2 * HOUR)])
        assert await h.expiry("tactful:s:c1:email:phone") == now + 3 * HOUR
        assert await explain(h.client, P, "c1", "email", "phone") == [("t1", "phone", now + 3 * HOUR)]


@run_async
async def test_expired_blocked_and_engage_decisions_write_nothing() -> None:
    h = Harness()
    async with started(h):
        now = wall_clock_ms()
        queued = h.mirror.submit(
            [
                decision(expires_at=now - 1),
                decision(expires_at=now + HOUR, status=Status.BLOCKED),
                decision(Kind.ENGAGE, expires_at=None),
            ]
        )
        assert queued == 0
        assert h.mirror.pending == 0
        await h.mirror.flush(1)
        assert await h.dump() == {}


@run_async
async def test_the_injected_clock_decides_what_is_expired_and_prunes_dead_fields() -> None:
    now = wall_clock_ms()
    clock = [now]
    h = Harness(clock=lambda: clock[0])
    async with started(h):
        await h.apply([decision(topology="brief", expires_at=now + 1_000), decision(topology="long")])
        clock[0] = now + 2_000  # "brief" is over for the mirror, though Redis's own clock disagrees
        assert h.mirror.submit([decision(topology="late", expires_at=now + 1_500)]) == 0
        await h.apply([decision(topology="other")])
        fields = await h.client.hgetall("tactful:s:c1:email:phone")
        assert set(fields) == {b"long", b"other"}


@run_async
async def test_customer_ids_with_colons_cannot_collide_with_other_keys() -> None:
    h = Harness()
    async with started(h):
        # Raw, "a:b" on channel "c" would read the key of customer "a", channel "b", category "c".
        await h.apply([decision(customer="a", channel="b", category="c")])
        assert not await h.suppressed("a:b", "c", None)
        await h.apply([decision(customer="a:b", channel="c", category="%3A")])
        assert await h.suppressed("a:b", "c", "%3A")
        assert not await h.suppressed("a:b", "c", ":")
        assert set(await h.dump()) == {
            b"tactful:s:a:b",
            b"tactful:s:a:b:c",
            b"tactful:s:a%3Ab:c",
            b"tactful:s:a%3Ab:c:%253A",
        }


def test_key_helpers_escape_only_percent_and_colon() -> None:
    assert category_key("p", "crm:42", "email", "*") == "p:s:crm%3A42:email:*"
    assert channel_key("p", "50%", "in-app") == "p:s:50%25:in-app"
    assert channel_key("p", "c-1 é", "ads") == "p:s:c-1 é:ads"


def test_a_prefix_with_separators_or_globs_is_refused() -> None:
    client = fakeredis.FakeAsyncRedis()
    for bad in ("", "a:b", "a*", "x y"):
        with pytest.raises(ConfigError):
            SuppressionMirror(client, prefix=bad, registry=CollectorRegistry())


@run_async
async def test_explain_lists_both_keys_and_works_with_decoded_responses() -> None:
    h = Harness(decode_responses=True)
    async with started(h):
        now = wall_clock_ms()
        await h.apply(
            [
                decision(topology="a", category="*", expires_at=now + HOUR),
                decision(topology="b", category="phone", expires_at=now + 2 * HOUR),
                decision(topology="c", category="tablet", expires_at=now + 3 * HOUR),
            ]
        )
        assert await explain(h.client, P, "c1", "email", "phone") == [
            ("a", "*", now + HOUR),
            ("b", "phone", now + 2 * HOUR),
        ]
        assert await explain(h.client, P, "c1", "email", None) == [
            ("a", "*", now + HOUR),
            ("b", "phone", now + 2 * HOUR),
            ("c", "tablet", now + 3 * HOUR),
        ]
        assert await explain(h.client, P, "c1", "email", "phone", now_ms=now + HOUR) == [("b", "phone", now + 2 * HOUR)]
        assert await explain(h.client, P, "c9", "email", None) == []


# --- outages, order and metrics ----------------------------------------------------


@run_async
async def test_an_outage_loses_nothing_and_keeps_the_order() -> None:
    h = Harness(batch_size=2)  # the sequences below span several batches
    async with started(h):
        now = wall_clock_ms()
        h.server.connected = False
        h.mirror.submit(
            [
                # c1: suppress, release, suppress again: only this order leaves the second one.
                decision(customer="c1", expires_at=now + HOUR),
                decision(Kind.RELEASE, customer="c1", expires_at=None),
                decision(customer="c1", expires_at=now + 2 * HOUR),
                # c2: suppress then release: only this order leaves nothing.
                decision(customer="c2"),
                decision(Kind.RELEASE, customer="c2", expires_at=None),
                decision(customer="c3", channel="sms", category="*"),
            ]
        )
        await until(lambda: h.metric("tactful_redis_mirror_errors_total") >= 3)
        assert h.mirror.degraded
        assert h.mirror.pending == 6
        await asyncio.sleep(0.01)
        assert h.mirror.lag_seconds > 0
        assert h.metric("tactful_redis_mirror_lag_seconds") > 0
        assert h.metric("tactful_redis_mirror_writes_total", op="set") == 0

        h.server.connected = True
        await h.mirror.flush(5)
        assert not h.mirror.degraded
        assert h.mirror.pending == 0
        assert h.mirror.lag_seconds == 0
        assert h.metric("tactful_redis_mirror_lag_seconds") == 0
        assert h.metric("tactful_redis_mirror_writes_total", op="set") == 4
        assert h.metric("tactful_redis_mirror_writes_total", op="release") == 2
        assert await explain(h.client, P, "c1", "email", "phone") == [("t1", "phone", now + 2 * HOUR)]
        assert not await h.suppressed("c2", "email", None)
        assert await h.suppressed("c3", "sms", "anything")


@run_async
async def test_writes_submitted_while_retrying_queue_behind_the_failed_batch() -> None:
    h = Harness(batch_size=1)
    async with started(h):
        h.server.connected = False
        h.mirror.submit([decision()])
        await until(lambda: h.mirror.degraded)
        h.mirror.submit([decision(Kind.RELEASE, expires_at=None)])
        h.server.connected = True
        await h.mirror.flush(5)
        assert await h.dump() == {}


@run_async
async def test_flush_timing_out_says_how_many_writes_wait_and_why() -> None:
    h = Harness()
    h.mirror.submit([decision()])
    with pytest.raises(MirrorUnavailable, match=r"1 writes still pending after 0.05s \(the mirror is not running"):
        await h.mirror.flush(0.05)

    async with started(h):
        h.server.connected = False
        h.mirror.submit([decision(customer="c2")])
        await until(lambda: h.mirror.degraded)
        with pytest.raises(MirrorUnavailable, match=r"writes still pending .*ConnectionError"):
            await h.mirror.flush(0.05)
        h.server.connected = True
        await h.mirror.flush(5)


@run_async
async def test_stop_interrupts_the_backoff_and_keeps_what_did_not_land() -> None:
    h = Harness()
    h.mirror = SuppressionMirror(h.client, backoff=Backoff(initial_s=30, max_s=30), registry=CollectorRegistry())
    h.mirror.start()
    h.server.connected = False
    h.mirror.submit([decision()])
    await until(lambda: h.mirror.degraded)
    started_at = time.monotonic()
    await h.mirror.stop()
    assert time.monotonic() - started_at < 1
    assert h.mirror.pending == 1


def test_backoff_doubles_up_to_its_cap() -> None:
    backoff = Backoff(initial_s=0.1, max_s=0.5)
    delays = [backoff.initial_s]
    for _ in range(4):
        delays.append(backoff.after(delays[-1]))
    assert delays == [0.1, 0.2, 0.4, 0.5, 0.5]


def test_two_mirrors_share_the_metrics_of_one_registry() -> None:
    registry = CollectorRegistry()
    client = fakeredis.FakeAsyncRedis()
    SuppressionMirror(client, registry=registry)
    SuppressionMirror(client, registry=registry)  # no "Duplicated timeseries"
    assert registry.get_sample_value("tactful_redis_mirror_errors_total") == 0


writes_strategy = st.lists(
    st.builds(
        MirrorWrite,
        op=st.sampled_from(["set", "release"]),
        customer_id=st.just("c1"),
        channel=st.sampled_from(["email", "sms"]),
        category=st.sampled_from(["phone", "*"]),
        topology=st.sampled_from(["t1", "t2"]),
        expires_at=st.integers(1, 4).map(lambda hours: wall_clock_ms() + hours * HOUR),
    ),
    max_size=12,
)


@settings(max_examples=60, deadline=None)
@given(writes=writes_strategy, done=st.integers(0, 12))
def test_a_batch_sent_again_after_a_partial_failure_ends_as_if_sent_once(writes: list[MirrorWrite], done: int) -> None:
    async def state(parts: list[list[MirrorWrite]]) -> dict[bytes, Any]:
        client = fakeredis.FakeAsyncRedis()
        script = apply_script(client)
        now = wall_clock_ms()
        for part in parts:
            await apply_writes(client, script, P, part, now)
        keys = sorted(await client.keys("*"))
        return {k: (await client.hgetall(k), await client.execute_command("PEXPIRETIME", k)) for k in keys}

    once = asyncio.run(state([writes]))
    # The first attempt got `done` writes through before the connection broke.
    assert asyncio.run(state([writes[:done], writes])) == once
    for _key, (fields, expires_at) in once.items():
        assert expires_at == max(int(v) for v in fields.values())


# --- reading errors ------------------------------------------------------------------


@run_async
async def test_reads_while_redis_is_down_raise_mirror_unavailable_with_the_cause() -> None:
    h = Harness()
    h.server.connected = False
    with pytest.raises(MirrorUnavailable) as caught:
        await is_suppressed(h.client, P, "c1", "email", None)
    assert type(caught.value.__cause__).__name__ == "ConnectionError"
    with pytest.raises(MirrorUnavailable):
        await explain(h.client, P, "c1", "email", "phone")


# --- rebuild ---------------------------------------------------------------------------


async def as_async(items: Iterable[Decision]) -> AsyncIterator[Decision]:
    for item in items:
        yield item


@run_async
async def test_rebuild_clears_only_our_prefix_and_applies_in_order() -> None:
    h = Harness()
    await h.client.hset("tactful:s:stale:email", "t1|*", "1")
    await h.client.set("other:s:c1:email", "kept")
    await h.client.set("tactful-x:s:c1:email", "kept")
    now = wall_clock_ms()
    history = [
        decision(customer="c1", expires_at=now - 1),  # over: left out
        decision(customer="c2", expires_at=now + HOUR),
        decision(Kind.RELEASE, customer="c2", expires_at=None),
        decision(customer="c3", category="*", expires_at=now + HOUR),
        decision(Kind.ENGAGE, customer="c3", expires_at=None),
    ]
    stats = await rebuild(h.client, as_async(history), prefix=P, now_ms=now, clear=True, batch_size=2)
    assert (stats.cleared, stats.set, stats.released, stats.ignored) == (1, 2, 1, 2)
    assert set(await h.client.keys("*")) == {
        b"other:s:c1:email",
        b"tactful-x:s:c1:email",
        b"tactful:s:c3:email",
        b"tactful:s:c3:email:*",
    }


@run_async
async def test_rebuild_through_a_mirror_without_clear_keeps_existing_keys() -> None:
    h = Harness()
    async with started(h):
        await h.apply([decision(customer="live")])
        stats = await rebuild(h.mirror, [decision(customer="old")], prefix=P, now_ms=wall_clock_ms(), clear=False)
        assert (stats.cleared, stats.set) == (0, 1)
        assert await h.suppressed("live", "email", None)
        assert await h.suppressed("old", "email", None)


@run_async
async def test_rebuild_fails_loudly_when_redis_is_down() -> None:
    h = Harness()
    h.server.connected = False
    with pytest.raises(MirrorUnavailable, match="redis-rebuild stopped"):
        await rebuild(h.client, [decision()], prefix=P, now_ms=wall_clock_ms(), clear=True)


def wire(d: Decision) -> bytes:
    return encode(d.to_record(), decision_schema(), decision_schema_id())


def test_decisions_from_partitions_merge_by_time_keep_partition_order_and_skip_bad_records() -> None:
    early = decision(customer="a", effective_at=1_000)
    late_found = decision(customer="a", effective_at=500)  # a late match, made after `early`
    b1 = decision(customer="b", effective_at=700)
    b2 = decision(Kind.RELEASE, customer="b", effective_at=1_500, expires_at=None)
    audit_copy = b1  # the same decision in the audit topic
    stats = ReadStats()
    got = decisions_from_partitions(
        {
            ("decisions.email", 1): [wire(b1), b"\x00\x00\x00\x00\x01junk", None, wire(b2)],
            ("decisions.email", 0): [wire(early), wire(late_found)],
            ("decisions.audit", 0): [wire(audit_copy), b"not avro"],
        },
        local_registry().resolve,
        stats,
    )
    assert [d.decision_id for d in got] == [b1.decision_id, early.decision_id, late_found.decision_id, b2.decision_id]
    assert got[0] == b1
    assert got[3].evidence == ("e1",)
    assert (stats.records, stats.skipped, stats.duplicates) == (8, 3, 1)
    assert stats.reasons == {"unknown_schema": 1, "malformed": 1, "tombstone": 1}
