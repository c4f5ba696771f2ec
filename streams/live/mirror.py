"""The Redis suppression mirror: active suppressions, one ``EXISTS`` away from any channel.

Kafka's decision topics are the source of truth. The live worker also mirrors
every emitted SUPPRESS and RELEASE into Redis, so an ad server (or any channel)
can ask "may I market to customer X on channel C, for category K?" with one
command. With ``p`` the prefix, the keys are two hashes per suppression:

* ``p:s:{customer}:{channel}:{category}``: field ``topology`` -> ``expires_at`` ms
* ``p:s:{customer}:{channel}``: field ``topology|category`` -> ``expires_at`` ms

Each key expires (``PEXPIREAT``) at the max of its fields, so a key exists
exactly while some suppression in it is active. Every change goes through one
Lua script, so a key's fields and its expiry never disagree. The layout, the
lookups for channel teams and the caveats are in ``docs/redis-mirror.md``.

What is here: :class:`SuppressionMirror` (the worker side: queue, batches,
retries until every write lands), :func:`is_suppressed` and :func:`explain`
(the reading side), :func:`rebuild` and :func:`read_decision_topics` (for
``tactful redis-rebuild``).
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
import re
import time
import uuid
from collections import Counter as Tally
from collections import deque
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import islice
from typing import Any, Final, Literal, TypeVar
from weakref import WeakKeyDictionary

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge
from redis.asyncio import Redis
from redis.commands.core import AsyncScript
from redis.exceptions import RedisError

from streams.codec.avro import Resolver, decode
from streams.decisions import Decision, Kind, Status
from streams.errors import ConfigError, InfraError, InputError, MirrorUnavailable

log = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_PREFIX: Final = "tactful"
ALL_CATEGORIES: Final = "*"

# A prefix is one key segment with no glob characters: then two deployments
# sharing a database never share a key, and `p:s:*` in SCAN matches only ours.
_PREFIX_PATTERN: Final = re.compile(r"[A-Za-z0-9_.-]{1,64}")

Op = Literal["set", "release"]

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


def key_part(value: str) -> str:
    """One key segment: ``%`` -> ``%25`` and ``:`` -> ``%3A``; any other text is kept as is.

    Without it the layout is ambiguous: customer ``a:b`` on channel ``c`` and
    customer ``a`` on channel ``b`` with category ``c`` would share ``p:s:a:b:c``.
    """
    if "%" not in value and ":" not in value:
        return value
    return value.replace("%", "%25").replace(":", "%3A")


def category_key(prefix: str, customer_id: str, channel: str, category: str) -> str:
    """The hash of one (customer, channel, category): it exists while one is suppressed."""
    return f"{prefix}:s:{key_part(customer_id)}:{key_part(channel)}:{key_part(category)}"


def channel_key(prefix: str, customer_id: str, channel: str) -> str:
    """The hash of one (customer, channel): it exists while any category of it is suppressed."""
    return f"{prefix}:s:{key_part(customer_id)}:{key_part(channel)}"


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
    if decision.status != Status.EMITTED:
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


def apply_script(client: Redis) -> AsyncScript:
    """The Lua script that applies one write to one hash, registered on ``client`` (no I/O)."""
    return client.register_script(_APPLY_LUA)


async def apply_writes(
    client: Redis, script: AsyncScript, prefix: str, writes: Sequence[MirrorWrite], now_ms: int
) -> None:
    """Apply ``writes`` in order, in one pipeline round trip; raises the library's ``RedisError``.

    Safe to repeat after a failure that may have applied part of the batch:
    a set keeps the max and a release deletes, so running the whole batch
    again ends in the same state as running it once.
    """
    async with client.pipeline(transaction=False) as pipe:
        for write in writes:
            for key, hash_field in write.targets(prefix):
                await script(keys=[key], args=[write.op, hash_field, write.expires_at, now_ms], client=pipe)
        await pipe.execute()


# --- metrics ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MirrorMetrics:
    """The mirror's Prometheus metrics (names in docs/metrics.md)."""

    writes: Counter
    errors: Counter
    lag: Gauge


_METRICS: WeakKeyDictionary[CollectorRegistry, MirrorMetrics] = WeakKeyDictionary()


def mirror_metrics(registry: CollectorRegistry | None = None) -> MirrorMetrics:
    """The mirror metrics on ``registry`` (default: the global one), created on first use.

    Created once per registry, so a second mirror in one process shares the
    counters instead of failing on duplicate names.
    """
    target = REGISTRY if registry is None else registry
    metrics = _METRICS.get(target)
    if metrics is None:
        metrics = MirrorMetrics(
            writes=Counter("tactful_redis_mirror_writes", "Suppression mirror writes landed.", ["op"], registry=target),
            errors=Counter(
                "tactful_redis_mirror_errors",
                "Failed mirror write attempts (one per failed batch; each is retried).",
                registry=target,
            ),
            lag=Gauge(
                "tactful_redis_mirror_lag_seconds",
                "Age of the oldest mirror write not yet landed (0 when caught up).",
                registry=target,
            ),
        )
        _METRICS[target] = metrics
    return metrics


# --- the worker side -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Backoff:
    """Waits between retries: ``initial_s``, times ``factor`` after each failure, at most ``max_s``."""

    initial_s: float = 0.1
    max_s: float = 5.0
    factor: float = 2.0

    def after(self, delay: float) -> float:
        """The wait that follows a failed wait of ``delay``."""
        return min(delay * self.factor, self.max_s)


@dataclass(frozen=True, slots=True)
class _Pending:
    write: MirrorWrite
    since: float  # monotonic seconds when submitted


class SuppressionMirror:
    """Mirrors emitted suppressions and releases to Redis, in order, never dropping one.

    :meth:`submit` only queues; :meth:`run` (or :meth:`start`) sends the queue
    in batches of ``batch_size``, one pipeline each. A batch that fails stays
    at the head of the queue and is sent again after a backoff, until it
    lands, so writes apply in submission order whatever fails in between.
    While a batch keeps failing the mirror is :attr:`degraded`.

    All methods must be called from the event loop that runs :meth:`run`.
    """

    def __init__(
        self,
        client: Redis,
        *,
        prefix: str = DEFAULT_PREFIX,
        clock: Callable[[], int] = wall_clock_ms,
        backoff: Backoff | None = None,
        batch_size: int = 256,
        registry: CollectorRegistry | None = None,
    ) -> None:
        if batch_size < 1:
            raise ConfigError(f"batch_size must be at least 1, got {batch_size}")
        self.client = client
        self.prefix = check_prefix(prefix)
        self._clock = clock
        self._backoff = backoff or Backoff()
        self._batch_size = batch_size
        self._script = apply_script(client)
        self._metrics = mirror_metrics(registry)
        self._metrics.lag.set_function(lambda: self.lag_seconds)
        self._queue: deque[_Pending] = deque()
        self._wakeup = asyncio.Event()  # work arrived, or stop
        self._stopped = asyncio.Event()
        self._drained = asyncio.Event()
        self._drained.set()
        self._degraded = False
        self._running = False
        self._last_error: str | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def degraded(self) -> bool:
        """True from a failed batch until the next batch lands."""
        return self._degraded

    @property
    def pending(self) -> int:
        """Writes queued and not landed yet."""
        return len(self._queue)

    @property
    def lag_seconds(self) -> float:
        """Age of the oldest write not landed yet; 0 when caught up."""
        if not self._queue:
            return 0.0
        return max(0.0, time.monotonic() - self._queue[0].since)

    def submit(self, decisions: Iterable[Decision]) -> int:
        """Queue the mirror writes of ``decisions`` in order; return how many. Never blocks.

        Suppressions already expired by the clock are left out: there is
        nothing to mirror. Writes are kept in memory until they land, so a
        long Redis outage grows the queue (see :attr:`pending`).
        """
        since = time.monotonic()
        added = 0
        for write in mirror_writes(decisions, self._clock()):
            self._queue.append(_Pending(write, since))
            added += 1
        if added:
            self._drained.clear()
            self._wakeup.set()
        return added

    def start(self) -> asyncio.Task[None]:
        """Run :meth:`run` as a task of the running loop; :meth:`stop` ends it."""
        if self._task is not None:
            raise RuntimeError("the suppression mirror is already started")
        self._task = asyncio.get_running_loop().create_task(self.run(), name="tactful-redis-mirror")
        return self._task

    async def stop(self) -> None:
        """End :meth:`run` after the batch in flight. Writes not landed stay in :attr:`pending`.

        Call :meth:`flush` first to wait for them.
        """
        self._stopped.set()
        self._wakeup.set()
        if self._task is not None:
            await self._task

    async def flush(self, timeout: float) -> None:
        """Wait until every submitted write has landed; :class:`MirrorUnavailable` after ``timeout`` s."""
        try:
            await asyncio.wait_for(self._drained.wait(), timeout)
        except TimeoutError as exc:
            state = f"last error: {self._last_error}" if self._degraded else "Redis answers"
            if not self._running:
                state = "the mirror is not running (start() it)"
            raise MirrorUnavailable(
                f"Redis mirror: {self.pending} writes still pending after {timeout:g}s ({state})"
            ) from exc

    async def run(self) -> None:
        """Send queued writes until :meth:`stop`: batch by batch, each retried until it lands."""
        if self._running:
            # Two loops would both send the head batch and pop it twice.
            raise RuntimeError("the suppression mirror is already running")
        self._running = True
        delay = self._backoff.initial_s
        try:
            while not self._stopped.is_set():
                if not self._queue:
                    self._wakeup.clear()
                    await self._wakeup.wait()
                    continue
                batch = [pending.write for pending in islice(self._queue, self._batch_size)]
                try:
                    await apply_writes(self.client, self._script, self.prefix, batch, self._clock())
                except (RedisError, OSError) as exc:
                    self._failed(exc, len(batch), delay)
                    await self._pause(delay)
                    delay = self._backoff.after(delay)
                else:
                    self._landed(batch)
                    delay = self._backoff.initial_s
        finally:
            self._running = False

    def _landed(self, batch: Sequence[MirrorWrite]) -> None:
        for write in batch:
            self._queue.popleft()
            self._metrics.writes.labels(op=write.op).inc()
        if self._degraded:
            log.warning("Redis mirror recovered: %d writes landed, %d pending", len(batch), self.pending)
            self._degraded = False
            self._last_error = None
        if not self._queue:
            self._drained.set()

    def _failed(self, exc: BaseException, size: int, delay: float) -> None:
        self._metrics.errors.inc()
        self._last_error = f"{type(exc).__name__}: {exc}"
        if not self._degraded:
            # Once per outage: each retry is logged at debug only, to keep the log readable.
            log.warning("Redis mirror degraded (%s); %d writes pending, retrying", self._last_error, self.pending)
            self._degraded = True
        log.debug("Redis mirror batch of %d failed (%s); retrying in %.2fs", size, self._last_error, delay)

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopped.wait(), seconds)


# --- the reading side ------------------------------------------------------------


async def is_suppressed(client: Redis, prefix: str, customer_id: str, channel: str, category: str | None) -> bool:
    """True while a suppression blocks engaging ``customer_id`` on ``channel`` (for ``category``).

    One ``EXISTS``: with a category, over its key and the all-categories key;
    with none, over the channel key (contract 4.1).
    """
    try:
        found = await client.exists(*lookup_keys(prefix, customer_id, channel, category))
    except RedisError as exc:
        raise MirrorUnavailable(f"cannot read the Redis mirror: {exc}") from exc
    return int(found) > 0


async def explain(
    client: Redis,
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
    except RedisError as exc:
        raise MirrorUnavailable(f"cannot read the Redis mirror: {exc}") from exc
    return sorted(row for row in found if row[2] > now)


async def _category_rows(
    client: Redis, prefix: str, customer_id: str, channel: str, category: str
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


# --- rebuild ---------------------------------------------------------------------


@dataclass(slots=True)
class RebuildStats:
    """What :func:`rebuild` did."""

    cleared: int = 0  # keys deleted before applying
    set: int = 0  # suppressions written
    released: int = 0  # releases applied
    ignored: int = 0  # decisions with nothing to mirror (other kinds or statuses, expired)


async def rebuild(
    target: SuppressionMirror | Redis,
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
    except RedisError as exc:
        raise MirrorUnavailable(
            f"redis-rebuild stopped after {stats.set} suppressions and {stats.released} releases: {exc}"
        ) from exc
    return stats


async def _apply_counted(
    client: Redis, script: AsyncScript, prefix: str, batch: list[MirrorWrite], now_ms: int, stats: RebuildStats
) -> None:
    if not batch:
        return
    await apply_writes(client, script, prefix, batch, now_ms)
    released = sum(1 for write in batch if write.op == "release")
    stats.released += released
    stats.set += len(batch) - released
    batch.clear()


async def clear_mirror(client: Redis, prefix: str, *, count: int = 1000) -> int:
    """Delete every ``{prefix}:s:*`` key (SCAN + UNLINK, never KEYS); return how many went."""
    deleted = 0
    cursor = 0
    while True:
        cursor, keys = await client.scan(cursor=cursor, match=f"{check_prefix(prefix)}:s:*", count=count)
        if keys:
            deleted += int(await client.unlink(*keys))
        if cursor == 0:
            return deleted


async def _each(items: Iterable[T] | AsyncIterable[T]) -> AsyncIterator[T]:
    if isinstance(items, AsyncIterable):
        async for item in items:
            yield item
    else:
        for item in items:
            yield item


# --- reading the decision topics -------------------------------------------------

Partition = tuple[str, int]


@dataclass(slots=True)
class ReadStats:
    """What :func:`read_decision_topics` read: records, and those it had to skip and why."""

    records: int = 0
    skipped: int = 0
    duplicates: int = 0  # the same decision_id again (e.g. in a channel topic and the audit topic)
    reasons: Tally[str] = field(default_factory=Tally)

    def skip(self, reason: str) -> None:
        self.skipped += 1
        self.reasons[reason] += 1


def decision_from_record(record: Mapping[str, Any]) -> Decision:
    """An Avro-form decision record -> :class:`Decision` (``KeyError``/``TypeError`` if it is not one)."""
    return Decision.from_record(record)


def decisions_from_partitions(
    values: Mapping[Partition, Sequence[bytes | None]], resolve: Resolver, stats: ReadStats | None = None
) -> list[Decision]:
    """Decode each partition's record values (in offset order) and merge them by (effective_at, decision_id).

    The merge never reorders records of one partition: decisions are keyed by
    customer, so a customer's decisions keep the order the worker made them
    in, even where a late match made an earlier ``effective_at`` after a later
    one. Records that do not decode are skipped and counted in ``stats``; a
    decision_id seen before is dropped.
    """
    tally = ReadStats() if stats is None else stats
    decoded = [_decode_partition(values[part], resolve, tally) for part in sorted(values)]
    merged: list[Decision] = []
    seen: set[str] = set()
    for decision in heapq.merge(*decoded, key=lambda d: (d.effective_at, d.decision_id)):
        if decision.decision_id in seen:
            tally.duplicates += 1
            continue
        seen.add(decision.decision_id)
        merged.append(decision)
    return merged


def _decode_partition(values: Sequence[bytes | None], resolve: Resolver, stats: ReadStats) -> list[Decision]:
    out = []
    for value in values:
        stats.records += 1
        if value is None:
            stats.skip("tombstone")
            continue
        try:
            out.append(decision_from_record(decode(value, resolve)))
        except InputError as exc:
            stats.skip(exc.reason)
        except (KeyError, TypeError, ValueError):
            stats.skip("not_a_decision")
    return out


def read_decision_topics(
    bootstrap: str,
    topics: Sequence[str],
    resolve: Resolver,
    timeout_s: float,
    *,
    stats: ReadStats | None = None,
) -> list[Decision]:
    """Every decision in ``topics`` from the beginning up to the end as of the call.

    Reads each partition to the high watermark it had at the start (new
    records are left for the live mirror), with a throwaway consumer group
    that commits nothing. Returns the decisions merged as
    :func:`decisions_from_partitions` says. Raises :class:`ConfigError` for a
    topic that does not exist and :class:`InfraError` when Kafka fails or the
    end is not reached within ``timeout_s``.
    """
    # Imported here: only `tactful redis-rebuild` needs librdkafka, not the worker.
    from confluent_kafka import Consumer, KafkaException

    deadline = time.monotonic() + timeout_s
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"tactful-redis-rebuild-{uuid.uuid4().hex}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
        }
    )
    try:
        ends = _partition_ends(consumer, topics, deadline)
        values = _read_to_ends(consumer, ends, deadline)
    except KafkaException as exc:
        raise InfraError(f"reading decision topics {', '.join(topics)} from {bootstrap} failed: {exc}") from exc
    finally:
        consumer.close()
    return decisions_from_partitions(values, resolve, stats)


def _remaining(deadline: float, what: str) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise InfraError(f"timed out {what}")
    return left


def _partition_ends(consumer: Any, topics: Sequence[str], deadline: float) -> dict[Partition, tuple[int, int]]:
    from confluent_kafka import TopicPartition

    ends: dict[Partition, tuple[int, int]] = {}
    for topic in topics:
        meta = consumer.list_topics(topic=topic, timeout=_remaining(deadline, f"listing topic {topic}"))
        info = meta.topics.get(topic)
        if info is None or info.error is not None:
            raise ConfigError(f"decision topic {topic!r} does not exist ({info.error if info else 'unknown'})")
        for number in sorted(info.partitions):
            offsets = consumer.get_watermark_offsets(
                TopicPartition(topic, number), timeout=_remaining(deadline, f"reading offsets of {topic}"), cached=False
            )
            if offsets is None:
                raise InfraError(f"timed out reading offsets of {topic}[{number}]")
            ends[(topic, number)] = (int(offsets[0]), int(offsets[1]))
    return ends


def _read_to_ends(
    consumer: Any, ends: Mapping[Partition, tuple[int, int]], deadline: float
) -> dict[Partition, list[bytes | None]]:
    from confluent_kafka import KafkaError, TopicPartition

    values: dict[Partition, list[bytes | None]] = {part: [] for part in ends}
    todo = {part for part, (low, high) in ends.items() if high > low}
    if not todo:
        return values
    consumer.assign([TopicPartition(topic, number, ends[(topic, number)][0]) for topic, number in sorted(todo)])
    while todo:
        left = _remaining(deadline, f"reading decision topics, {len(todo)} partitions short of their end")
        for message in consumer.consume(num_messages=1000, timeout=min(left, 1.0)):
            part = (message.topic(), message.partition())
            error = message.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    # The end may lie before the high watermark (transaction markers,
                    # an open transaction); EOF says there is nothing more to read.
                    todo.discard(part)
                elif error.fatal():
                    raise InfraError(f"Kafka consumer failed: {error}")
                else:
                    log.debug("Kafka consumer error (retried by librdkafka): %s", error)
                continue
            if part not in todo or message.offset() >= ends[part][1]:
                continue
            values[part].append(message.value())
            if message.offset() + 1 >= ends[part][1]:
                todo.discard(part)
    return values
