"""Rebuilding the mirror from decisions (``tactful redis-rebuild``).

:func:`rebuild` applies a history of decisions in batches through the same
Lua script as the worker, optionally after :func:`clear_mirror`; running it
again is safe. Where the decisions come from is the caller's business (see
:mod:`streams.live.decision_topics`).
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Iterable
from dataclasses import dataclass
from typing import TypeVar

from redis.commands.core import AsyncScript

from streams.decisions import Decision
from streams.errors import ConfigError, MirrorUnavailable
from streams.mirror.forget import unlink_matching
from streams.mirror.keys import (
    REDIS_ERRORS,
    MirrorWrite,
    RedisClient,
    apply_script,
    apply_writes,
    check_prefix,
    mirror_write,
)
from streams.mirror.writer import SuppressionMirror

T = TypeVar("T")


@dataclass(slots=True)
class RebuildStats:
    """What :func:`rebuild` did."""

    cleared: int = 0  # keys deleted before applying
    set: int = 0  # suppressions written
    released: int = 0  # releases applied
    ignored: int = 0  # decisions with nothing to mirror (other kinds or statuses, expired)


async def rebuild(
    target: SuppressionMirror | RedisClient,
    decisions: Iterable[Decision] | AsyncIterable[Decision],
    *,
    prefix: str,
    now_ms: int,
    clear: bool,
    batch_size: int = 500,
) -> RebuildStats:
    """Write the mirror from ``decisions`` (all of them, in the order given); raise on any Redis error.

    With ``clear`` every ``{prefix}:s:*`` key is deleted first (SCAN and
    UNLINK in batches). Suppressions expired at ``now_ms`` are left out.
    Raises :class:`MirrorUnavailable` when Redis fails; running it again is safe.
    """
    check_prefix(prefix)
    if isinstance(target, SuppressionMirror) and target.prefix != prefix:
        raise ConfigError(f"rebuild prefix {prefix!r} differs from the mirror's {target.prefix!r}")
    client = target.client if isinstance(target, SuppressionMirror) else target
    script = apply_script(client)
    stats = RebuildStats()
    batch: list[MirrorWrite] = []
    try:
        if clear:
            stats.cleared = await clear_mirror(client, prefix)
        async for decision in _each(decisions):
            write = mirror_write(decision, now_ms)
            if write is None:
                stats.ignored += 1
                continue
            batch.append(write)
            if len(batch) >= batch_size:
                await _apply_counted(client, script, prefix, batch, now_ms, stats)
        await _apply_counted(client, script, prefix, batch, now_ms, stats)
    except REDIS_ERRORS as exc:
        raise MirrorUnavailable(
            f"redis-rebuild stopped after {stats.set} suppressions and {stats.released} releases: {exc}"
        ) from exc
    return stats


async def _apply_counted(
    client: RedisClient, script: AsyncScript, prefix: str, batch: list[MirrorWrite], now_ms: int, stats: RebuildStats
) -> None:
    if not batch:
        return
    await apply_writes(client, script, prefix, batch, now_ms)
    released = sum(1 for write in batch if write.op == "release")
    stats.released += released
    stats.set += len(batch) - released
    batch.clear()


async def clear_mirror(client: RedisClient, prefix: str, *, count: int = 1000) -> int:
    """Delete every ``{prefix}:s:*`` key (SCAN + UNLINK, never KEYS); return how many went.

    Keys of both layouts match (layout 1's ``p:s:cid:ch`` and layout 2's
    ``p:s:{cid}:ch``), so a rebuild also removes what the old layout left. On a
    cluster every primary is scanned, and the deletions are split by slot.
    """
    return await unlink_matching(client, f"{check_prefix(prefix)}:s:*", count=count)


async def _each(items: Iterable[T] | AsyncIterable[T]) -> AsyncIterator[T]:
    if isinstance(items, AsyncIterable):
        async for item in items:
            yield item
    else:
        for item in items:
            yield item
