"""The reading side: may a channel market to a customer, and which suppressions say no.

Both answer from the layout of :mod:`streams.mirror.keys` alone, so any
client can do the same (``docs/redis-mirror.md`` shows the commands).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from streams.errors import MirrorUnavailable
from streams.mirror.keys import (
    ALL_CATEGORIES,
    REDIS_ERRORS,
    RedisClient,
    category_key,
    channel_key,
    lookup_keys,
    wall_clock_ms,
)


async def is_suppressed(client: RedisClient, prefix: str, customer_id: str, channel: str, category: str | None) -> bool:
    """True while a suppression blocks engaging ``customer_id`` on ``channel`` (for ``category``).

    One ``EXISTS``: with a category, over its key and the all-categories key;
    with none, over the channel key (contract 4.1).
    """
    try:
        found = await client.exists(*lookup_keys(prefix, customer_id, channel, category))
    except REDIS_ERRORS as exc:
        raise MirrorUnavailable(f"cannot read the Redis mirror: {exc}") from exc
    return int(found) > 0


async def explain(
    client: RedisClient,
    prefix: str,
    customer_id: str,
    channel: str,
    category: str | None,
    *,
    now_ms: int | None = None,
) -> list[tuple[str, str, int]]:
    """The suppressions behind :func:`is_suppressed`: ``(topology, category, expires_at_ms)``, sorted.

    Only those still active at ``now_ms`` (default: the wall clock).
    """
    now = wall_clock_ms() if now_ms is None else now_ms
    try:
        if category is None:
            found = _channel_rows(await client.hgetall(channel_key(prefix, customer_id, channel)))
        else:
            found = await _category_rows(client, prefix, customer_id, channel, category)
    except REDIS_ERRORS as exc:
        raise MirrorUnavailable(f"cannot read the Redis mirror: {exc}") from exc
    return sorted(row for row in found if row[2] > now)


async def _category_rows(
    client: RedisClient, prefix: str, customer_id: str, channel: str, category: str
) -> list[tuple[str, str, int]]:
    categories = list(dict.fromkeys((category, ALL_CATEGORIES)))
    async with client.pipeline(transaction=False) as pipe:
        for each in categories:
            pipe.hgetall(category_key(prefix, customer_id, channel, each))
        hashes = await pipe.execute()
    return [
        (_text(topology), each, int(expires))
        for each, fields in zip(categories, hashes, strict=True)
        for topology, expires in fields.items()
    ]


def _channel_rows(fields: Mapping[Any, Any]) -> list[tuple[str, str, int]]:
    rows = []
    for name, expires in fields.items():
        topology, _, category = _text(name).partition("|")
        rows.append((topology, category, int(expires)))
    return rows


def _text(value: bytes | str) -> str:
    # Works whether or not the client was made with decode_responses=True.
    return value.decode("utf-8") if isinstance(value, bytes) else value
