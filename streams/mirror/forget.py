"""Deleting one customer's keys from the mirror, for an erased customer (contract section 9).

Every key of a customer starts ``{prefix}:s:{customer}:`` (the customer
segment escaped by :func:`~streams.mirror.keys.key_part`, so no other
customer's keys share that start). :func:`forget_customer` finds them with
``SCAN MATCH`` (never ``KEYS``: it would block Redis) and ``UNLINK``\\ s them.
SCAN walks the whole keyspace, a few milliseconds per thousand keys; an
erasure is rare enough for that. Deleting twice deletes nothing more, so a
retried deletion is safe.

The mirror consumer (:mod:`streams.mirror.consumer`) deletes at the forget
record, in topic order among the writes around it, and
:meth:`~streams.mirror.SuppressionMirror.forget` queues it among a writer's
writes: either way a suppression made before the erase never lands after it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from redis.asyncio import Redis

from streams.mirror.keys import check_prefix, key_part

_GLOB = str.maketrans({c: f"\\{c}" for c in "\\*?[]^"})


@dataclass(frozen=True, slots=True)
class ForgetCustomer:
    """A queued deletion of every key of one customer."""

    customer_id: str
    op: ClassVar[str] = "forget"


def customer_pattern(prefix: str, customer_id: str) -> str:
    """The SCAN pattern of every key of one customer: glob characters in the id are escaped."""
    return f"{check_prefix(prefix)}:s:{key_part(customer_id).translate(_GLOB)}:*"


async def forget_customer(client: Redis, prefix: str, customer_id: str, *, count: int = 1000) -> int:
    """Delete every mirror key of ``customer_id``; return how many went. Raises the library's ``RedisError``."""
    pattern = customer_pattern(prefix, customer_id)
    deleted = 0
    cursor = 0
    while True:
        cursor, keys = await client.scan(cursor=cursor, match=pattern, count=count)
        if keys:
            deleted += int(await client.unlink(*keys))
        if cursor == 0:
            return deleted
