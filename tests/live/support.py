"""Helpers shared by the mirror's unit tests (fakeredis) and integration tests (redis-server)."""

from __future__ import annotations

import asyncio
import functools
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from streams.decisions import Decision, Kind, Status
from streams.live.mirror import wall_clock_ms

HOUR = 3_600_000
_ids = iter(range(10**9))


def run_async(test: Callable[..., Awaitable[None]]) -> Callable[..., None]:
    """Run an async test on a fresh loop (the project has no pytest async plugin)."""

    @functools.wraps(test)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        asyncio.run(asyncio.wait_for(test(*args, **kwargs), 120))

    return wrapper


def decision(
    kind: Kind = Kind.SUPPRESS,
    *,
    customer: str = "c1",
    channel: str = "email",
    category: str | None = "phone",
    topology: str = "t1",
    expires_at: int | None = None,
    effective_at: int | None = None,
    status: Status = Status.EMITTED,
) -> Decision:
    """A decision for the mirror; ids are unique across runs, as a shared real Redis needs."""
    now = wall_clock_ms()
    if kind == Kind.SUPPRESS and expires_at is None:
        expires_at = now + HOUR
    return Decision(
        decision_id=f"{uuid.uuid4().hex[:24]}{next(_ids):08x}",
        customer_id=customer,
        kind=kind,
        channel=channel,
        action="call" if kind == Kind.ENGAGE else None,
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
