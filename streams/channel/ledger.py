"""The channel client's deduplication ledger in Redis: one hash per decision, with an expiry.

Key ``{prefix}:ch:{group}:{id}`` (``id`` is the decision id, or for a forget
record ``forget:{hash of customer}:{erased_at}``: no customer id in a key
name), fields:

* ``attempts``: how many times a hand-over of this record began (claimed);
* ``done``: present once the caller's function returned for it.

:meth:`Ledger.claim` runs before the caller's function and returns the
attempt number (1 the first time), or ``None`` when the record is done
already; :meth:`Ledger.done` runs after it returns. A claim that finds
``attempts`` but no ``done`` means an earlier hand-over began and did not
finish (the process died, or the function raised): the caller's function
sees ``attempt > 1`` and can check its own side effects. Every write renews
the key's expiry (``ttl_ms``), so a record is recognised while it can still
be read again (set the ttl above the topic's retention, or at least above
how far back an offset reset may go).

The group is part of the key: two consumer groups of one channel (two
teams, two apps) each get every decision once.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

from streams.errors import InfraError

if TYPE_CHECKING:
    from streams.mirror import RedisClient

DEFAULT_TTL_MS = 30 * 24 * 3_600_000  # the channel topics' shipped retention floor (docs/erasure.md)


def decision_key(prefix: str, group: str, decision_id: str) -> str:
    return f"{prefix}:ch:{group}:{decision_id}"


def forget_key(prefix: str, group: str, customer_id: str, erased_at: int) -> str:
    digest = hashlib.blake2b(customer_id.encode("utf-8"), digest_size=16).hexdigest()
    return f"{prefix}:ch:{group}:forget:{digest}:{erased_at}"


class Ledger:
    """Claims and done marks in Redis (see the module docstring)."""

    def __init__(self, redis: RedisClient, *, ttl_ms: int = DEFAULT_TTL_MS) -> None:
        if ttl_ms <= 0:
            raise ValueError(f"ttl_ms must be positive, got {ttl_ms}")
        self.redis = redis
        self.ttl_ms = ttl_ms

    async def claim(self, key: str) -> int | None:
        """The attempt number of this hand-over, or None when the record is done already."""
        from redis.exceptions import RedisError

        try:
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.hexists(key, "done")
                pipe.hincrby(key, "attempts", 1)
                pipe.pexpire(key, self.ttl_ms)
                done, attempts, _ = await pipe.execute()
        except (RedisError, OSError) as exc:
            raise InfraError(f"the channel client's Redis failed: {exc}") from exc
        return None if done else int(attempts)

    async def done(self, key: str) -> None:
        from redis.exceptions import RedisError

        try:
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.hset(key, "done", "1")
                pipe.pexpire(key, self.ttl_ms)
                await pipe.execute()
        except (RedisError, OSError) as exc:
            raise InfraError(f"the channel client's Redis failed: {exc}") from exc
