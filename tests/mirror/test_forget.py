"""Deleting an erased customer's keys (contract section 9): exactly theirs, in the order of the writes."""

from __future__ import annotations

import pytest

from streams.decisions import Kind
from streams.errors import MirrorUnavailable
from streams.mirror import customer_pattern, forget_customer, wall_clock_ms
from tests.mirror.support import HOUR, Harness, P, decision, run_async, started

# Ids with the key escape's characters and Redis glob's special characters.
HOSTILE = ["c1", "a:b", "a%3Ab", "a*", "a?", "[ab]", "a\\b", "a^b", "*"]


@pytest.mark.parametrize("customer", HOSTILE)
@run_async
async def test_only_the_customers_keys_go(customer: str) -> None:
    h = Harness()
    async with started(h):
        everyone = [*HOSTILE, "a", "ab", "b", "a:b:c"]
        await h.apply(decision(customer=c, channel=ch) for c in everyone for ch in ("email", "sms"))
        before = set(await h.client.keys("*"))
        deleted = await forget_customer(h.client, P, customer)
        after = set(await h.client.keys("*"))
        assert deleted == 4  # two channels, a category hash and a channel hash each
        assert not await h.suppressed(customer, "email", "phone")
        assert not await h.suppressed(customer, "sms", None)
        for other in everyone:
            if other != customer:
                assert await h.suppressed(other, "email", "phone"), other
        assert len(before - after) == 4
        assert await forget_customer(h.client, P, customer) == 0  # again: nothing more


def test_the_pattern_escapes_glob_characters() -> None:
    assert customer_pattern("p", "a*?[]\\^") == "p:s:{a\\*\\?\\[\\]\\\\\\^}:*"
    assert customer_pattern("p", "a:b") == "p:s:{a%3Ab}:*"
    assert customer_pattern("p", "{a}") == "p:s:{%7Ba%7D}:*"


@run_async
async def test_a_queued_deletion_lands_between_the_writes_around_it() -> None:
    h = Harness(batch_size=10)
    async with started(h):
        now = wall_clock_ms()
        h.server.connected = False  # everything queues, then lands in one go, in order
        h.mirror.submit([decision(customer="c1", channel="email"), decision(customer="c2", channel="email")])
        h.mirror.forget("c1")
        h.mirror.submit([decision(customer="c1", channel="sms", expires_at=now + 2 * HOUR)])
        assert h.mirror.pending == 4
        h.server.connected = True
        await h.mirror.flush(5)
        assert not await h.suppressed("c1", "email", "phone")  # made before the erase: gone
        assert await h.suppressed("c1", "sms", "phone")  # made after it: kept
        assert await h.suppressed("c2", "email", "phone")
        assert h.metric("tactful_redis_mirror_writes_total", op="forget") == 1


@run_async
async def test_a_failed_deletion_is_retried_until_it_lands() -> None:
    h = Harness()
    async with started(h):
        await h.apply([decision(customer="c1"), decision(Kind.ENGAGE, customer="c1")])
        h.server.connected = False
        h.mirror.forget("c1")
        with pytest.raises(MirrorUnavailable, match="pending"):
            await h.mirror.flush(0.2)
        assert h.mirror.degraded
        h.server.connected = True
        await h.mirror.flush(5)
        assert not await h.suppressed("c1", "email", "phone") and h.mirror.pending == 0
