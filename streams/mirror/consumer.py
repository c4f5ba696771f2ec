"""The worker's mirror: a consumer of the decision topics with its own committed offsets.

The mirror is part of the delivery chain without standing in its way. Each
worker runs a :class:`MirrorConsumer` in a consumer group of its own over
the channels' decision topics, so the group spreads their partitions over
the workers. A fetched batch of decisions is written to Redis (the Lua
script of :mod:`streams.mirror.keys`, idempotent), and only once every
write landed are the batch's offsets committed. A kill at any moment
leaves the writes of uncommitted records to be applied again, in order, by
whoever owns the partition next; a Redis outage holds the batch (and the
mirror's offsets) where they are and nothing else: the decisions still
reach their channels, and no queue grows in memory. Why this and not
holding the worker's batch until its mirror writes land: ``docs/redis-mirror.md``.

Most decisions on the channel topics change no suppression: ENGAGEs, and
SUPPRESSes whose end has passed when they are read (a replay, a backlog).
With ``inert`` (:meth:`~streams.codec.avro.DecisionDecoder.inert`, given by
the worker's codecs) such a record is judged by its first fields and passed
over undecoded (counted in :attr:`MirrorConsumer.passed_over`); only the rest
is decoded and turned into writes. A record whose later bytes are corrupt is
then passed over rather than counted in :attr:`MirrorConsumer.skipped`: it
would have changed nothing either way.

Self-healing rests on the generation (:mod:`streams.mirror.generation`).
Offsets are committed with the generation token they were written under as
their metadata. A partition whose committed token is not Redis's current
one (or that has no committed offset) is replayed from the beginning of its
topic; writes are idempotent, so replaying what is already there changes
nothing. The token is read back after every batch (in the batch's own round
trip), every ``check_every_s`` when idle, and first thing after a failure;
when it has changed or vanished, every partition the consumer holds is
resolved again, so it replays them all. Nothing is ever cleared, so two
workers healing at once cannot undo each other's work. Each replay is
counted in ``tactful_redis_mirror_rebuilds_total`` and logged on one line.

Kafka is behind the :class:`DecisionLog` port (``streams/live/faust/mirror_log.py``
adapts aiokafka to it), so this module and its tests need no broker.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Protocol

from prometheus_client import CollectorRegistry
from redis.exceptions import RedisClusterException, RedisError

from streams.decisions import Decision, forgotten
from streams.errors import ConfigError, InfraError, InputError
from streams.mirror.forget import ForgetCustomer, forget_customer
from streams.mirror.generation import apply_then_read_generation, claim_generation, read_generation
from streams.mirror.keys import (
    DEFAULT_PREFIX,
    MirrorWrite,
    RedisClient,
    apply_script,
    apply_writes,
    check_prefix,
    mirror_write,
    wall_clock_ms,
)
from streams.mirror.writer import Backoff, mirror_metrics

log = logging.getLogger(__name__)

Partition = tuple[str, int]


class LogRecord(Protocol):
    """One record of a decision topic (aiokafka's ``ConsumerRecord`` fits)."""

    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...
    @property
    def key(self) -> bytes | None: ...
    @property
    def value(self) -> bytes | None: ...
    @property
    def headers(self) -> Sequence[tuple[str, bytes]]: ...
    @property
    def timestamp(self) -> int: ...  # epoch ms (the decision topics use the broker's append time)


class Rebalance(Protocol):
    """What the log tells the consumer when the group moves partitions."""

    async def assigned(self, partitions: Collection[Partition]) -> None: ...
    async def revoked(self, partitions: Collection[Partition]) -> None: ...


class DecisionLog(Protocol):
    """The decision topics, as a group-managed consumer reads them. Kafka failures raise :class:`InfraError`."""

    async def start(self, listener: Rebalance) -> None: ...
    async def stop(self) -> None: ...

    async def fetch(self, timeout_s: float, max_records: int) -> Sequence[LogRecord]:
        """Records of the assigned partitions, each partition's in offset order; empty after ``timeout_s``."""

    async def committed(self, partitions: Collection[Partition]) -> Mapping[Partition, tuple[int, str]]:
        """The group's committed ``(offset, metadata)`` of each partition that has one."""

    async def seek(self, positions: Mapping[Partition, int | None]) -> None:
        """Read each partition from its offset next; ``None``: from its beginning."""

    async def commit(self, offsets: Mapping[Partition, tuple[int, str]]) -> bool:
        """Commit ``(next offset, metadata)``; False when a rebalance took the partitions meanwhile."""

    async def behind(self, partitions: Collection[Partition]) -> Mapping[Partition, int | None]:
        """Records between each partition's position and its end, as last fetched; ``None`` if unknown."""


class MirrorConsumer:
    """Mirrors the decision topics into Redis; commits offsets only after their writes landed.

    :meth:`run` (or :meth:`start`) until :meth:`stop`. :attr:`degraded`,
    :attr:`pending` and :attr:`lag_seconds` are what ``/health`` shows.
    All methods must be called from the event loop that runs :meth:`run`.
    """

    def __init__(
        self,
        client: RedisClient,
        source: DecisionLog,
        decode: Callable[[bytes], Decision],
        *,
        inert: Callable[[bytes, int], bool] | None = None,
        prefix: str = DEFAULT_PREFIX,
        clock: Callable[[], int] = wall_clock_ms,
        backoff: Backoff | None = None,
        check_every_s: float = 1.0,
        fetch_wait_s: float = 0.5,
        max_records: int = 1000,
        registry: CollectorRegistry | None = None,
    ) -> None:
        if max_records < 1:
            raise ConfigError(f"max_records must be at least 1, got {max_records}")
        self.client = client
        self.prefix = check_prefix(prefix)
        self._source = source
        self._decode = decode
        self._inert = inert or _never_inert
        self._clock = clock
        self._backoff = backoff or Backoff()
        self._check_every_s = check_every_s
        self._fetch_wait_s = fetch_wait_s
        self._max_records = max_records
        self._script = apply_script(client)
        self._metrics = mirror_metrics(registry)
        self._metrics.lag.set_function(lambda: self.lag_seconds)
        self._lock = asyncio.Lock()  # held while a batch's writes are in flight
        self._stopped = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._generation: str | None = None  # the token this consumer's positions belong to
        self._assigned: set[Partition] = set()
        self._unresolved: set[Partition] = set()  # assigned, position not yet chosen
        self._replaying: set[Partition] = set()  # read again from the beginning, not yet at the end
        self._behind: dict[Partition, int | None] = {}
        self._epoch = 0  # bumped whenever positions change under a batch in hand
        self._batch: Sequence[LogRecord] = ()
        self._writes: list[MirrorWrite | ForgetCustomer] = []
        self._batch_epoch = 0
        self._oldest: float | None = None  # wall s of the oldest decision not yet mirrored, if any
        self._next_check = 0.0
        self._failing = False
        self._last_error: str | None = None
        self.skipped = 0  # records that were not decisions
        self.passed_over = 0  # decisions left undecoded: their first bytes said they change nothing

    # -- status -------------------------------------------------------------------------

    @property
    def degraded(self) -> bool:
        """True while Redis or Kafka fails, and while partitions are replayed (suppressions may be missing)."""
        return self._failing or bool(self._replaying)

    @property
    def rebuilding(self) -> bool:
        """True while some partition is read again from its beginning."""
        return bool(self._replaying)

    @property
    def pending(self) -> int:
        """Decision records not mirrored yet: the batch in hand and what the topics hold beyond it."""
        return len(self._batch) + sum(n for n in self._behind.values() if n)

    @property
    def lag_seconds(self) -> float:
        """Age of the oldest decision not mirrored yet (by its append time); 0 when caught up."""
        if self._oldest is None:
            return 0.0
        return max(0.0, time.time() - self._oldest)

    @property
    def generation(self) -> str | None:
        return self._generation

    # -- rebalances (called by the log) ---------------------------------------------------

    async def assigned(self, partitions: Collection[Partition]) -> None:
        self._epoch += 1
        self._assigned.update(partitions)
        self._unresolved.update(partitions)

    async def revoked(self, partitions: Collection[Partition]) -> None:
        self._epoch += 1
        # The writes in flight land (or fail) before the group hands these partitions on,
        # so the next owner's writes never land under this worker's older ones.
        async with self._lock:
            pass
        gone = set(partitions)
        self._assigned -= gone
        self._unresolved -= gone
        self._replaying -= gone
        for part in gone:
            self._behind.pop(part, None)
        self._drop()

    # -- running ---------------------------------------------------------------------------

    def start(self) -> asyncio.Task[None]:
        """Run :meth:`run` as a task of the running loop; :meth:`stop` ends it."""
        if self._task is not None:
            raise RuntimeError("the mirror consumer is already started")
        self._task = asyncio.get_running_loop().create_task(self.run(), name="tactful-redis-mirror")
        return self._task

    async def stop(self) -> None:
        """End :meth:`run`; records not mirrored yet stay uncommitted, for the next owner."""
        self._stopped.set()
        if self._task is not None:
            await self._task

    async def run(self) -> None:
        """Mirror batch after batch until :meth:`stop`; every failure is retried after a backoff."""
        delay = self._backoff.initial_s
        started = False
        try:
            while not self._stopped.is_set():
                try:
                    if not started:
                        await self._source.start(self)
                        started = True
                    await self._step()
                except (RedisError, RedisClusterException, OSError, InfraError) as exc:
                    self._failed(exc, delay)
                    await self._measure_while_failing()
                    await self._pause(delay)
                    delay = self._backoff.after(delay)
                else:
                    delay = self._backoff.initial_s
        finally:
            if started:
                await self._source.stop()

    async def _step(self) -> None:
        # After a failure the generation is checked before anything else: the Redis that
        # answers again may be a new, empty one.
        if self._failing or time.monotonic() >= self._next_check:
            await self._check()
        if self._unresolved:
            await self._resolve()
        if not self._batch:
            records = await self._source.fetch(self._fetch_wait_s, self._max_records)
            if records:
                try:
                    self._hold(records)
                except InfraError:
                    # Decoding needed a schema registry that did not answer: read these records
                    # again after the backoff instead of passing over them.
                    await self._source.seek(_firsts(records))
                    raise
            elif self._failing:
                self._recovered()
            await self._measure()  # before the writes: pending must count the held batch once
        if self._batch:
            await self._mirror()
            await self._measure()

    async def _check(self) -> None:
        token = await read_generation(self.client, self.prefix)
        self._next_check = time.monotonic() + self._check_every_s
        if self._generation is not None and token != self._generation:
            self._forget(token)

    def _forget(self, token: str | None) -> None:
        """Redis is not the one this consumer's positions were written to: resolve them all again."""
        log.debug("Redis mirror generation %s is now %s", self._generation, token)
        self._generation = None
        self._epoch += 1
        self._unresolved |= self._assigned
        self._drop()

    async def _resolve(self) -> None:
        """Choose where each new partition starts: its committed offset, or the beginning."""
        token, created = await claim_generation(self.client, self.prefix)
        if self._generation is not None and token != self._generation:
            self._forget(token)  # the partitions already held replay too
        epoch = self._epoch
        parts = set(self._unresolved)
        committed = await self._source.committed(parts)
        if epoch != self._epoch:
            return  # a rebalance meanwhile: resolve what is assigned now
        positions: dict[Partition, int | None] = {}
        stale: list[Partition] = []  # committed under another generation: written to a Redis that is gone
        for part in parts:
            found = committed.get(part)
            if found is not None and found[1] == token:
                positions[part] = found[0]
            else:
                positions[part] = None
                if found is not None:
                    stale.append(part)
        await self._source.seek(positions)
        self._generation = token
        self._unresolved -= parts
        self._epoch += 1
        fresh = [part for part, offset in positions.items() if offset is None]
        self._replaying.update(fresh)
        self._behind.update(dict.fromkeys(fresh))
        # Partitions never committed start from the beginning too; that is a first read, not a
        # rebuild, unless Redis itself had lost its generation.
        if stale or (created and fresh):
            self._metrics.rebuilds.inc()
            why = "Redis had no mirror generation" if created else "their offsets belong to another generation"
            log.warning(
                "Redis mirror rebuilding: replaying %d decision-topic partitions from the beginning "
                "(%s; generation %s)",
                len(fresh),
                why,
                token,
            )

    def _hold(self, records: Sequence[LogRecord]) -> None:
        now = self._clock()
        inert, decode = self._inert, self._decode
        writes: list[MirrorWrite | ForgetCustomer] = []
        oldest = records[0].timestamp
        passed = 0
        for record in records:
            timestamp = record.timestamp
            if timestamp < oldest:
                oldest = timestamp
            value = record.value
            if value is None:
                key = record.key
                if key and forgotten(record.headers):
                    # An erased customer (contract section 9): their keys go, in the order of the
                    # topic, so a suppression decided before the erase never outlives it.
                    writes.append(ForgetCustomer(key.decode("utf-8", "replace")))
                else:
                    self.skipped += 1
                continue
            # Most decisions change no suppression (an ENGAGE, a SUPPRESS already over):
            # their first bytes say so, and the rest is not decoded.
            if inert(value, now):
                passed += 1
                continue
            try:
                decision = decode(value)
            except (InputError, KeyError, TypeError, ValueError):
                self.skipped += 1
                log.debug("skipping %s[%d]@%d: not a decision", record.topic, record.partition, record.offset)
                continue
            write = mirror_write(decision, now)
            if write is not None:
                writes.append(write)
        self.passed_over += passed
        self._batch, self._writes, self._batch_epoch = records, writes, self._epoch
        self._oldest = oldest / 1000

    def _drop(self) -> None:
        self._batch, self._writes = (), []

    async def _mirror(self) -> None:
        async with self._lock:
            if self._batch_epoch != self._epoch:
                self._drop()  # positions moved under it: its records come again
                return
            now = self._clock()
            token = await self._apply(now)
        batch, writes = self._batch, self._writes
        self._drop()
        self._oldest = None
        for write in writes:
            self._metrics.writes.labels(op=write.op).inc()
        if self._failing:
            self._recovered()
        if token is None or token != self._generation:
            self._forget(token)  # the writes may have landed in a Redis that lost what came before
            return
        last: dict[Partition, int] = {}
        for record in batch:
            last[(record.topic, record.partition)] = record.offset
        offsets = {part: (offset + 1, token) for part, offset in last.items()}
        if self._batch_epoch == self._epoch:
            await self._source.commit(offsets)

    async def _apply(self, now: int) -> str | None:
        """Apply the held batch's writes in order and read the generation back.

        A forget is a SCAN and UNLINK of its own, between the pipelines of the writes
        around it. Repeating the whole batch after a failure part-way is safe: a set
        keeps the max, a release and a forget delete.
        """
        segment: list[MirrorWrite] = []
        for write in self._writes:
            if isinstance(write, ForgetCustomer):
                if segment:
                    await apply_writes(self.client, self._script, self.prefix, segment, now)
                    segment = []
                await forget_customer(self.client, self.prefix, write.customer_id)
            else:
                segment.append(write)
        return await apply_then_read_generation(self.client, self._script, self.prefix, segment, now)

    async def _measure(self) -> None:
        if not self._assigned:
            self._behind.clear()
            self._oldest = None
            return
        self._behind = dict(await self._source.behind(self._assigned))
        if self._replaying:  # only while replaying: the batch's partitions are a set per record
            held = {(record.topic, record.partition) for record in self._batch}
            self._replaying -= {part for part in self._replaying if self._behind.get(part) == 0 and part not in held}
        caught_up = not self._batch and not self._unresolved and all(n == 0 for n in self._behind.values())
        if caught_up:
            self._oldest = None
        elif self._oldest is None and (self._failing or self._unresolved):
            self._oldest = time.time()

    # -- failures --------------------------------------------------------------------------

    def _failed(self, exc: BaseException, delay: float) -> None:
        self._metrics.errors.inc()
        self._last_error = f"{type(exc).__name__}: {exc}"
        if self._oldest is None:
            self._oldest = time.time()
        if not self._failing:
            log.warning("Redis mirror degraded (%s); %d decisions pending, retrying", self._last_error, self.pending)
            self._failing = True
        log.debug("Redis mirror step failed (%s); retrying in %.2fs", self._last_error, delay)

    async def _measure_while_failing(self) -> None:
        # A failing step stops before its fetch, so without this /health would go on showing
        # the backlog of the moment Redis went away (often 0) for the whole outage.
        with contextlib.suppress(RedisError, RedisClusterException, OSError, InfraError):
            await self._measure()

    def _recovered(self) -> None:
        log.warning("Redis mirror recovered; %d decisions pending", self.pending)
        self._failing = False
        self._last_error = None

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopped.wait(), seconds)


def _never_inert(value: bytes, now_ms: int) -> bool:
    return False


def _firsts(records: Sequence[LogRecord]) -> dict[Partition, int | None]:
    """Each partition's first offset among ``records``."""
    firsts: dict[Partition, int | None] = {}
    for record in records:
        firsts.setdefault((record.topic, record.partition), record.offset)
    return firsts
