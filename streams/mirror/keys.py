"""The mirror's key layout, its Lua script, and what each decision writes.

With ``p`` the prefix and ``cid``, ``ch``, ``K`` the customer, channel and
category (each escaped by :func:`key_part`), one suppression lives in two
hashes, ``p:s:{cid}:ch:K`` and ``p:s:{cid}:ch``. The braces are literal: they
are Redis Cluster's hash tag, so every key of one customer hashes to the slot
of ``cid`` alone (:func:`customer_slot`), and the multi-key commands a reader
sends for one customer (the category lookup's ``EXISTS`` of two keys) work on
a cluster. :func:`key_part` escapes ``{`` and ``}``, so no id can end the tag
early or start another. (Layout 2; layout 1, before Cluster support, had no
braces: ``docs/redis-mirror.md`` says how a deployment moves over.)

:func:`mirror_write` turns a decision into a :class:`MirrorWrite`;
:func:`apply_writes` sends writes through the one Lua script
(:func:`apply_script`), which keeps each hash's expiry at the max of its
active fields. The script touches exactly the one key it is given, never the
generation key or another customer's, because on a cluster a script may only
touch keys of one slot, and the generation key's slot is not any customer's.
Nothing here does I/O but :func:`apply_writes`.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Final, Literal, TypeAlias

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.commands.core import AsyncScript
from redis.crc import key_slot
from redis.exceptions import NoScriptError, RedisClusterException, RedisError

from streams.decisions import Decision, Kind, Status
from streams.errors import ConfigError, InputError

DEFAULT_PREFIX: Final = "tactful"
ALL_CATEGORIES: Final = "*"

# A prefix is one key segment with no glob characters: then two deployments
# sharing a database never share a key, and `p:s:*` in SCAN matches only ours.
_PREFIX_PATTERN: Final = re.compile(r"[A-Za-z0-9_.-]{1,64}")

Op = Literal["set", "release"]

# What the mirror talks to: one Redis, or a Redis Cluster (streams.clients.redis_client builds either).
RedisClient: TypeAlias = Redis | RedisCluster

# What a Redis call may raise: RedisCluster raises RedisClusterException, which is not a
# RedisError, when it cannot reach any node or a slot is not served.
REDIS_ERRORS: Final[tuple[type[Exception], ...]] = (RedisError, RedisClusterException)

# KEYS[1]: one suppression hash. ARGV: op ('set' | 'release'), field,
# expires_at ms, now ms. Times stay decimal strings in the hash: Lua numbers
# are doubles, exact for every epoch-ms time the contract allows (< 2^53).
_APPLY_LUA: Final = """
local key, op, field = KEYS[1], ARGV[1], ARGV[2]
local now = tonumber(ARGV[4])
if op == 'set' then
  local new = tonumber(ARGV[3])
  local old = tonumber(redis.call('HGET', key, field))
  if new > now and (old == nil or new > old) then
    redis.call('HSET', key, field, ARGV[3])
  end
else
  redis.call('HDEL', key, field)
end
-- Expired fields go, so the expiry below is the max of the active ones; a
-- hash left empty is deleted by Redis itself.
local flat = redis.call('HGETALL', key)
local latest, latest_text = nil, false
for i = 1, #flat, 2 do
  local at = tonumber(flat[i + 1])
  if at == nil or at <= now then
    redis.call('HDEL', key, flat[i])
  elseif latest == nil or at > latest then
    latest, latest_text = at, flat[i + 1]
  end
end
if latest_text then
  redis.call('PEXPIREAT', key, latest_text)
end
return latest_text
"""


def wall_clock_ms() -> int:
    """Now, in epoch milliseconds (the default clock)."""
    return time.time_ns() // 1_000_000


def check_prefix(prefix: str) -> str:
    """``prefix`` if it is a valid key prefix, else :class:`ConfigError`."""
    if not _PREFIX_PATTERN.fullmatch(prefix):
        raise ConfigError(f"Redis mirror prefix must match [A-Za-z0-9_.-]{{1,64}}, got {prefix!r}")
    return prefix


# --- keys ------------------------------------------------------------------------


_ESCAPES: Final = str.maketrans({"%": "%25", ":": "%3A", "{": "%7B", "}": "%7D"})


def key_part(value: str) -> str:
    """One key segment: ``%`` -> ``%25``, ``:`` -> ``%3A``, ``{`` -> ``%7B``, ``}`` -> ``%7D``; nothing else changes.

    Without it the layout is ambiguous: customer ``a:b`` on channel ``c`` and
    customer ``a`` on channel ``b`` with category ``c`` would share a key. A
    brace left in a customer id would end (or move) the hash tag, and two
    customers' keys could share a slot or one customer's keys be split.
    """
    if not any(c in value for c in "%:{}"):
        return value
    return value.translate(_ESCAPES)


def customer_tag(customer_id: str) -> str:
    """``{cid}``: the hash tag every key of the customer carries (``cid`` escaped)."""
    if not customer_id:
        # "{}" is no hash tag for Redis: each key would hash whole, to a slot of its own.
        raise InputError("invalid_customer_id", "a customer id must not be empty")
    return f"{{{key_part(customer_id)}}}"


def customer_slot(customer_id: str) -> int:
    """The Redis Cluster slot of every mirror key of ``customer_id``."""
    return key_slot(customer_tag(customer_id).encode("utf-8"))


def category_key(prefix: str, customer_id: str, channel: str, category: str) -> str:
    """The hash of one (customer, channel, category): it exists while one is suppressed."""
    return f"{prefix}:s:{customer_tag(customer_id)}:{key_part(channel)}:{key_part(category)}"


def channel_key(prefix: str, customer_id: str, channel: str) -> str:
    """The hash of one (customer, channel): it exists while any category of it is suppressed."""
    return f"{prefix}:s:{customer_tag(customer_id)}:{key_part(channel)}"


def lookup_keys(prefix: str, customer_id: str, channel: str, category: str | None) -> list[str]:
    """The keys whose existence blocks an engagement (contract 4.1): one ``EXISTS`` over them."""
    if category is None:
        return [channel_key(prefix, customer_id, channel)]
    keys = [category_key(prefix, customer_id, channel, category)]
    if category != ALL_CATEGORIES:
        keys.append(category_key(prefix, customer_id, channel, ALL_CATEGORIES))
    return keys


# --- writes ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MirrorWrite:
    """One decision's change to the mirror; it touches both of its hashes."""

    op: Op
    customer_id: str
    channel: str
    category: str
    topology: str
    expires_at: int  # 0 for a release, which needs none

    def targets(self, prefix: str) -> tuple[tuple[str, str], tuple[str, str]]:
        """(key, field) in the per-category hash, then in the per-channel hash."""
        return (
            (category_key(prefix, self.customer_id, self.channel, self.category), self.topology),
            # Topology names match [a-z][a-z0-9_]*, so the first "|" splits the field.
            (channel_key(prefix, self.customer_id, self.channel), f"{self.topology}|{self.category}"),
        )


def mirror_write(decision: Decision, now_ms: int) -> MirrorWrite | None:
    """What ``decision`` changes in the mirror, or ``None`` when nothing.

    Only emitted SUPPRESS (still active at ``now_ms``) and RELEASE decisions
    matter. A suppression with no category is an all-categories one (the
    contract's default).
    """
    if decision.status != Status.EMITTED or decision.channel is None:  # GOAL records have no channel
        return None
    category = ALL_CATEGORIES if decision.category is None else decision.category
    if decision.kind == Kind.SUPPRESS:
        if decision.expires_at is None or decision.expires_at <= now_ms:
            return None
        return MirrorWrite(
            "set", decision.customer_id, decision.channel, category, decision.topology, decision.expires_at
        )
    if decision.kind == Kind.RELEASE:
        return MirrorWrite("release", decision.customer_id, decision.channel, category, decision.topology, 0)
    return None


def mirror_writes(decisions: Iterable[Decision], now_ms: int) -> Iterator[MirrorWrite]:
    """:func:`mirror_write` of each decision, in order, leaving out those that change nothing."""
    for decision in decisions:
        write = mirror_write(decision, now_ms)
        if write is not None:
            yield write


def apply_script(client: RedisClient) -> AsyncScript:
    """The Lua script that applies one write to one hash, registered on ``client`` (no I/O)."""
    return client.register_script(_APPLY_LUA)


async def apply_writes(
    client: RedisClient,
    script: AsyncScript,
    prefix: str,
    writes: Sequence[MirrorWrite],
    now_ms: int,
    *,
    then_get: str | None = None,
) -> bytes | str | None:
    """Apply ``writes`` in order, in one pipeline round trip; raises the library's errors (:data:`REDIS_ERRORS`).

    With ``then_get``, a ``GET`` of that key follows the writes in the same
    round trip and its value is returned. Safe to repeat after a failure that
    may have applied part of the batch: a set keeps the max and a release
    deletes, so running the whole batch again ends in the same state as
    running it once. That is also how a server without the script is
    handled: the script is loaded (on every primary of a cluster) and the
    batch is sent again, once.
    """
    if not writes and then_get is None:
        return None
    try:
        return await _send(client, script.sha, prefix, writes, now_ms, then_get)
    except NoScriptError:
        script.sha = await client.script_load(script.script)
    return await _send(client, script.sha, prefix, writes, now_ms, then_get)


async def _send(
    client: RedisClient, sha: str, prefix: str, writes: Sequence[MirrorWrite], now_ms: int, then_get: str | None
) -> bytes | str | None:
    # EVALSHA is queued as a raw command: redis-py's cluster pipeline refuses its evalsha()
    # (it cannot load a missing script), which apply_writes does instead.
    async with client.pipeline(transaction=False) as pipe:
        for write in writes:
            for key, hash_field in write.targets(prefix):
                pipe.execute_command("EVALSHA", sha, 1, key, write.op, hash_field, write.expires_at, now_ms)
        if then_get is not None:
            pipe.get(then_get)
        results = await pipe.execute()
    found = results[-1] if then_get is not None else None
    return found if isinstance(found, bytes | str) else None
