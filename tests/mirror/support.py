"""Helpers shared by the mirror's unit tests (fakeredis) and integration tests (redis-server).

:class:`Harness` is for the unit tests only: a fake Redis and a started mirror on it.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any

import fakeredis
from prometheus_client import CollectorRegistry

from streams.decisions import Decision, Kind, Status
from streams.mirror import Backoff, SuppressionMirror, is_suppressed, wall_clock_ms
from tests.support import run_async as run_async  # re-exported: every mirror test runs async
from tests.support import until as until

HOUR = 3_600_000
_ids = iter(range(10**9))


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
