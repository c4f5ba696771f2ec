"""Rebuilding the mirror against fakeredis: clear only our prefix, apply in order, fail loudly."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable

import pytest

from streams.decisions import Decision, Kind
from streams.errors import MirrorUnavailable
from streams.mirror import rebuild, wall_clock_ms
from tests.mirror.support import HOUR, Harness, P, decision, run_async, started


async def as_async(items: Iterable[Decision]) -> AsyncIterator[Decision]:
    for item in items:
        yield item


@run_async
async def test_rebuild_clears_only_our_prefix_and_applies_in_order() -> None:
    h = Harness()
    await h.client.hset("tactful:s:stale:email", "t1|*", "1")  # layout 1 (no hash tag): cleared too
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
        b"tactful:s:{c3}:email",
        b"tactful:s:{c3}:email:*",
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
