"""The mirror's generation: one key that says "this Redis still holds what was written to it".

``{prefix}:generation`` holds a token (its creation time in ms and a random
tail). Whoever finds it missing creates a new one with ``SET NX``, so two
workers noticing at once agree on one token and neither clears anything.
A Redis that lost its data (``FLUSHALL``, a restart without persistence,
a failover to an empty replica) loses this key with the suppressions, and the
token changes: :class:`~streams.mirror.consumer.MirrorConsumer` commits its
offsets in the decision topics with the token they were written under, and
replays from the beginning every partition whose committed token is not the
current one. The key has no expiry and lies outside ``{prefix}:s:*``, so
:func:`~streams.mirror.rebuild.clear_mirror` keeps it.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from redis.asyncio import Redis
from redis.commands.core import AsyncScript

from streams.mirror.keys import MirrorWrite, check_prefix, wall_clock_ms


def generation_key(prefix: str) -> str:
    """The key of the mirror's generation token."""
    return f"{check_prefix(prefix)}:generation"


def new_token() -> str:
    """A fresh generation token: when it was made (epoch ms), then a random tail."""
    return f"{wall_clock_ms()}-{uuid.uuid4().hex[:12]}"


def _text(value: bytes | str | None) -> str | None:
    return value.decode("ascii") if isinstance(value, bytes) else value


async def read_generation(client: Redis, prefix: str) -> str | None:
    """The current token, or ``None`` when the key is gone; raises the library's ``RedisError``."""
    return _text(await client.get(generation_key(prefix)))


async def claim_generation(client: Redis, prefix: str) -> tuple[str, bool]:
    """The current token, creating one when there is none: ``(token, created_here)``.

    ``SET NX``: of two callers racing, one creates and both return its token.
    """
    key = generation_key(prefix)
    while True:
        token = new_token()
        if await client.set(key, token, nx=True):
            return token, True
        found = _text(await client.get(key))
        if found is not None:
            return found, False
        # Gone again between the two commands (another flush): try again.


async def apply_then_read_generation(
    client: Redis, script: AsyncScript, prefix: str, writes: Sequence[MirrorWrite], now_ms: int
) -> str | None:
    """:func:`~streams.mirror.keys.apply_writes`, then ``GET`` the generation in the same round trip.

    The token read after the writes tells whether they landed in the Redis
    the caller thinks: if it changed, the data under them may be gone.
    """
    async with client.pipeline(transaction=False) as pipe:
        for write in writes:
            for key, hash_field in write.targets(prefix):
                await script(keys=[key], args=[write.op, hash_field, write.expires_at, now_ms], client=pipe)
        pipe.get(generation_key(prefix))
        results = await pipe.execute()
    token = results[-1]
    return _text(token) if isinstance(token, bytes | str) else None
