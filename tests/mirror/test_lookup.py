"""The reading side against fakeredis: explain, and reads while Redis is down."""

from __future__ import annotations

import pytest

from streams.errors import MirrorUnavailable
from streams.mirror import explain, is_suppressed, wall_clock_ms
from tests.mirror.support import HOUR, Harness, P, decision, run_async, started


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


@run_async
async def test_reads_while_redis_is_down_raise_mirror_unavailable_with_the_cause() -> None:
    h = Harness()
    h.server.connected = False
    with pytest.raises(MirrorUnavailable) as caught:
        await is_suppressed(h.client, P, "c1", "email", None)
    assert type(caught.value.__cause__).__name__ == "ConnectionError"
    with pytest.raises(MirrorUnavailable):
        await explain(h.client, P, "c1", "email", "phone")
