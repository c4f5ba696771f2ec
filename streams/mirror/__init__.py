"""The Redis suppression mirror: active suppressions, one ``EXISTS`` away from any channel.

Kafka's decision topics are the source of truth. The live worker also mirrors
every emitted SUPPRESS and RELEASE into Redis, so an ad server (or any channel)
can ask "may I market to customer X on channel C, for category K?" with one
command. With ``p`` the prefix and ``cid``, ``ch``, ``K`` the escaped customer,
channel and category, the keys are two hashes per suppression (key layout 2;
the braces are literal, Redis Cluster's hash tag, so one customer's keys share
a slot and the mirror runs on a standalone Redis and on a cluster alike):

* ``p:s:{cid}:ch:K``: field ``topology`` -> ``expires_at`` ms
* ``p:s:{cid}:ch``: field ``topology|K`` -> ``expires_at`` ms

Each key expires (``PEXPIREAT``) at the max of its fields, so a key exists
exactly while some suppression in it is active. Every change goes through one
Lua script, so a key's fields and its expiry never disagree. The layout, the
lookups for channel teams, moving from layout 1, Cluster, ACLs and TLS, and
the caveats are in ``docs/redis-mirror.md``. Every function takes a
:data:`RedisClient`: ``redis.asyncio.Redis`` or ``RedisCluster``, as
:func:`streams.clients.redis_client` builds them.

One module per job:

* :mod:`~streams.mirror.keys`: the prefix check, the key layout, the Lua
  script, and :func:`mirror_write` (which decisions change what);
* :mod:`~streams.mirror.consumer`: :class:`MirrorConsumer`, the worker side:
  it consumes the decision topics in a group of its own, commits offsets only
  after their writes landed, and replays from the beginning whatever Redis
  lost (:mod:`~streams.mirror.generation`: the token that says so);
* :mod:`~streams.mirror.writer`: :class:`SuppressionMirror`, an in-memory
  queue of writes retried until each lands, and the mirror's metrics;
* :mod:`~streams.mirror.lookup`: :func:`is_suppressed` and :func:`explain`,
  the reading side;
* :mod:`~streams.mirror.rebuild`: :func:`rebuild` and :func:`clear_mirror`,
  for ``tactful redis-rebuild``;
* :mod:`~streams.mirror.forget`: :func:`forget_customer`, deleting an erased
  customer's keys (contract section 9).

Where a rebuild's decisions come from is not the mirror's business: reading
them back from Kafka is :mod:`streams.live.decision_topics`.
"""

from streams.mirror.consumer import DecisionLog, LogRecord, MirrorConsumer
from streams.mirror.forget import ForgetCustomer, customer_pattern, forget_customer
from streams.mirror.generation import claim_generation, generation_key, read_generation
from streams.mirror.keys import (
    ALL_CATEGORIES,
    DEFAULT_PREFIX,
    REDIS_ERRORS,
    MirrorWrite,
    Op,
    RedisClient,
    apply_script,
    apply_writes,
    category_key,
    channel_key,
    check_prefix,
    customer_slot,
    customer_tag,
    key_part,
    lookup_keys,
    mirror_write,
    mirror_writes,
    wall_clock_ms,
)
from streams.mirror.lookup import explain, is_suppressed
from streams.mirror.rebuild import RebuildStats, clear_mirror, rebuild
from streams.mirror.writer import Backoff, MirrorMetrics, SuppressionMirror, mirror_metrics

__all__ = [
    "ALL_CATEGORIES",
    "DEFAULT_PREFIX",
    "REDIS_ERRORS",
    "Backoff",
    "DecisionLog",
    "ForgetCustomer",
    "LogRecord",
    "MirrorConsumer",
    "MirrorMetrics",
    "MirrorWrite",
    "Op",
    "RebuildStats",
    "RedisClient",
    "SuppressionMirror",
    "apply_script",
    "apply_writes",
    "category_key",
    "channel_key",
    "check_prefix",
    "claim_generation",
    "clear_mirror",
    "customer_pattern",
    "customer_slot",
    "customer_tag",
    "explain",
    "forget_customer",
    "generation_key",
    "is_suppressed",
    "key_part",
    "lookup_keys",
    "mirror_metrics",
    "mirror_write",
    "mirror_writes",
    "read_generation",
    "rebuild",
    "wall_clock_ms",
]
