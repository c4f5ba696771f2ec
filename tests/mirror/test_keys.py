"""The key layout and its Lua script, through a mirror on fakeredis (Lua by lupa): what each decision leaves."""

from __future__ import annotations

import asyncio
from typing import Any

import fakeredis
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from streams.decisions import Kind, Status
from streams.errors import ConfigError
from streams.mirror import (
    MirrorWrite,
    SuppressionMirror,
    apply_script,
    apply_writes,
    category_key,
    channel_key,
    explain,
    wall_clock_ms,
)
from tests.mirror.support import HOUR, Harness, P, decision, run_async, started


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
            b"tactful:s:{c1}:email": {b"t1|phone": str(expires).encode()},
            b"tactful:s:{c1}:email:phone": {b"t1": str(expires).encode()},
        }
        assert await h.expiry("tactful:s:{c1}:email") == expires
        assert await h.expiry("tactful:s:{c1}:email:phone") == expires


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
        assert await h.expiry("tactful:s:{c1}:email:phone") == now + 2 * HOUR
        assert await h.expiry("tactful:s:{c1}:email") == now + 2 * HOUR

        await h.apply([decision(Kind.RELEASE, topology="long", expires_at=None)])
        assert await h.suppressed("c1", "email", "phone")
        assert await h.expiry("tactful:s:{c1}:email:phone") == now + HOUR
        assert await h.expiry("tactful:s:{c1}:email") == now + HOUR
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
        assert await h.expiry("tactful:s:{c1}:email:phone") == now + 3 * HOUR
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
        fields = await h.client.hgetall("tactful:s:{c1}:email:phone")
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
            b"tactful:s:{a}:b",
            b"tactful:s:{a}:b:c",
            b"tactful:s:{a%3Ab}:c",
            b"tactful:s:{a%3Ab}:c:%253A",
        }


def test_key_helpers_tag_the_customer_and_escape_only_percent_colon_and_braces() -> None:
    assert category_key("p", "crm:42", "email", "*") == "p:s:{crm%3A42}:email:*"
    assert channel_key("p", "50%", "in-app") == "p:s:{50%25}:in-app"
    assert channel_key("p", "c-1 é", "ads") == "p:s:{c-1 é}:ads"
    assert category_key("p", "{a}b}", "e{m}", "k:}") == "p:s:{%7Ba%7Db%7D}:e%7Bm%7D:k%3A%7D"


def test_a_prefix_with_separators_or_globs_is_refused() -> None:
    client = fakeredis.FakeAsyncRedis()
    for bad in ("", "a:b", "a*", "x y"):
        with pytest.raises(ConfigError):
            SuppressionMirror(client, prefix=bad, registry=CollectorRegistry())


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
