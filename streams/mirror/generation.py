"""The mirror's generation: one key that says "this Redis still holds what was written to it".

``{prefix}:generation:2`` holds a token (its creation time in ms and a random
tail). Whoever finds it missing creates a new one with ``SET NX``, so two
workers noticing at once agree on one token and neither clears anything.
A Redis that lost its data (``FLUSHALL``, a restart without persistence,
a failover to an empty replica) loses this key with the suppressions, and the
token changes: :class:`~streams.mirror.consumer.MirrorConsumer` commits its
offsets in the decision topics with the token they were written under, and
replays from the beginning every partition whose committed token is not the
current one. The key has no expiry and lies outside ``{prefix}:s:*``, so
:func:`~streams.mirror.rebuild.clear_mirror` keeps it.

The ``2`` is the key layout (:mod:`streams.mirror.keys`). Layout 1 kept its
token in ``{prefix}:generation``; a worker of layout 2 finds no token of its
own on a Redis that only ever had layout 1, creates one, and so replays every
decision partition into the new keys: the move to a new layout is the
self-healing path, with no migration step. Workers of both layouts side by
side (a rolling upgrade) each keep their own token and keys.

On a Redis Cluster the key lives in one slot, which is no customer's: it is
only ever read and written by commands of its own (a ``GET`` in the batch's
pipeline, which redis-py's cluster pipeline sends to the key's node), never
inside the Lua script with a customer's keys, since a script may only touch
keys of one slot. It therefore watches the shard that holds it: a shard
that lost its data while that one kept it goes unnoticed
(``docs/redis-mirror.md``, Limits).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from redis.commands.core import AsyncScript

from streams.mirror.keys import MirrorWrite, RedisClient, apply_writes, check_prefix, wall_clock_ms


def generation_key(prefix: str) -> str:
    """The key of the mirror's generation token (of key layout 2)."""
    return f"{check_prefix(prefix)}:generation:2"


def new_token() -> str:
    """A fresh generation token: when it was made (epoch ms), then a random tail."""
    return f"{wall_clock_ms()}-{uuid.uuid4().hex[:12]}"


def _text(value: bytes | str | None) -> str | None:
    return value.decode("ascii") if isinstance(value, bytes) else value


async def read_generation(client: RedisClient, prefix: str) -> str | None:
    """The current token, or ``None`` when the key is gone; raises the library's ``RedisError``."""
    return _text(await client.get(generation_key(prefix)))


async def claim_generation(client: RedisClient, prefix: str) -> tuple[str, bool]:
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
    client: RedisClient, script: AsyncScript, prefix: str, writes: Sequence[MirrorWrite], now_ms: int
) -> str | None:
    """:func:`~streams.mirror.keys.apply_writes`, then ``GET`` the generation in the same round trip.

    The token read after the writes tells whether they landed in the Redis
    the caller thinks: if it changed, the data under them may be gone.
    """
    return _text(await apply_writes(client, script, prefix, writes, now_ms, then_get=generation_key(prefix)))
