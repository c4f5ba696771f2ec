"""Deleting one customer's keys from the mirror, for an erased customer (contract section 9).

Every key of a customer starts ``{prefix}:s:{cid}:`` (the customer id
escaped by :func:`~streams.mirror.keys.key_part` inside its hash tag, so no
other customer's keys share that start). :func:`forget_customer` finds them
with ``SCAN MATCH`` (never ``KEYS``: it would block Redis) and ``UNLINK``\\ s
them. SCAN walks the whole keyspace of a Redis, a few milliseconds per
thousand keys; an erasure is rare enough for that. On a cluster only the node
serving the customer's slot is scanned, since the hash tag puts all of the
customer's keys there, and one ``UNLINK`` of them touches one slot. Deleting
twice deletes nothing more, so a retried deletion is safe.

The mirror consumer (:mod:`streams.mirror.consumer`) deletes at the forget
record, in topic order among the writes around it, and
:meth:`~streams.mirror.SuppressionMirror.forget` queues it among a writer's
writes: either way a suppression made before the erase never lands after it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from redis.asyncio.cluster import RedisCluster

from streams.mirror.keys import RedisClient, check_prefix, customer_tag

_GLOB = str.maketrans({c: f"\\{c}" for c in "\\*?[]^"})


@dataclass(frozen=True, slots=True)
class ForgetCustomer:
    """A queued deletion of every key of one customer."""

    customer_id: str
    op: ClassVar[str] = "forget"


def customer_pattern(prefix: str, customer_id: str) -> str:
    """The SCAN pattern of every key of one customer: glob characters in the id are escaped.

    Braces are no glob characters: ``{`` and ``}`` in the pattern match themselves.
    """
    return f"{check_prefix(prefix)}:s:{customer_tag(customer_id).translate(_GLOB)}:*"


async def forget_customer(client: RedisClient, prefix: str, customer_id: str, *, count: int = 1000) -> int:
    """Delete every mirror key of ``customer_id``; return how many went. Raises the library's errors."""
    pattern = customer_pattern(prefix, customer_id)
    if isinstance(client, RedisCluster):
        node = client.get_node_from_key(f"{prefix}:s:{customer_tag(customer_id)}")
        return await unlink_matching(client, pattern, count=count, target_nodes=node)
    return await unlink_matching(client, pattern, count=count)


async def unlink_matching(client: RedisClient, pattern: str, *, count: int = 1000, **scan: Any) -> int:
    """``UNLINK`` every key that ``SCAN MATCH pattern`` finds, up to ``count`` at a time; how many went.

    On a cluster, ``SCAN`` visits every primary (or ``scan``'s ``target_nodes``),
    and redis-py splits each ``UNLINK`` by slot.
    """
    deleted = 0
    batch: list[Any] = []
    async for key in client.scan_iter(match=pattern, count=count, **scan):
        batch.append(key)
        if len(batch) >= count:
            deleted += int(await client.unlink(*batch))
            batch = []
    if batch:
        deleted += int(await client.unlink(*batch))
    return deleted
