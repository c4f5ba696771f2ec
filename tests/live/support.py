"""Helpers shared by the live unit tests (fakeredis, fake producers) and the mirror's integration tests."""

from __future__ import annotations

import asyncio
import functools
import inspect
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from streams.decisions import ENGAGE, SUPPRESS, Decision
from streams.live.mirror import wall_clock_ms

HOUR = 3_600_000
_ids = iter(range(10**9))


def run_async(test: Callable[..., Awaitable[None]]) -> Callable[..., None]:
    """Run an async test on a fresh loop (the project has no pytest async plugin)."""

    @functools.wraps(test)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        asyncio.run(asyncio.wait_for(test(*args, **kwargs), 120))

    return wrapper


async def until(
    condition: Callable[[], object], timeout: float = 5.0, what: str = "condition", every: float = 0.001
) -> None:
    """Poll `condition` (a plain or an async callable) until it holds; fail after `timeout` seconds.

    The only sleep the live tests have: an interval between looks, never a wait for "long enough"."""
    deadline = time.monotonic() + timeout
    while True:
        held = condition()
        if inspect.isawaitable(held):
            held = await held
        if held:
            return
        assert time.monotonic() < deadline, f"{what} not reached in {timeout}s"
        await asyncio.sleep(every)


def decision(
    kind: str = SUPPRESS,
    *,
    customer: str = "c1",
    channel: str = "email",
    category: str | None = "phone",
    topology: str = "t1",
    expires_at: int | None = None,
    effective_at: int | None = None,
    status: str = "emitted",
) -> Decision:
    """A decision for the mirror; ids are unique across runs, as a shared real Redis needs."""
    now = wall_clock_ms()
    if kind == SUPPRESS and expires_at is None:
        expires_at = now + HOUR
    return Decision(
        decision_id=f"{uuid.uuid4().hex[:24]}{next(_ids):08x}",
        customer_id=customer,
        kind=kind,
        channel=channel,
        action="call" if kind == ENGAGE else None,
        category=category,
        topology=topology,
        topology_version=1,
        effective_at=now if effective_at is None else effective_at,
        expires_at=expires_at,
        not_before=None,
        evidence=("e1",),
        reason="test",
        status=status,
    )
