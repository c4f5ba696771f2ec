"""The live worker's core, with no Faust in it.

The Faust adapter (:mod:`streams.live.faust`) drives it through a small port:
micro-batches of raw records come in (:meth:`Runtime.handle`), partitions
are assigned and revoked (:meth:`Runtime.assign`, :meth:`Runtime.revoke`),
time passes (:meth:`Runtime.tick`); back out through the :class:`Source`
go the acks, and the runtime asks it whether the state table has recovered
and how far the broker's partitions reach. Everything else it is given as a
:class:`RuntimeIO`: the sink, the state table, codecs, metrics. (The Redis
mirror is not among them: it consumes the decision topics itself, see
:mod:`streams.mirror.consumer`.)

Each record is decoded and takes the same :class:`~streams.engine.Step` as
in ``replay`` (validate, process, classify, reject), on its partition's
:class:`~streams.engine.Processor`. What is live only stays here: the step's
admit hook re-routes a record on the wrong partition, rejections become dead
letters with headers, and metrics are counted. Each processor is given an
:class:`~streams.engine.IdleAdvance` with the wall clock, which moves a
quiet, caught-up partition's stream time on every tick. Before a batch, the
codecs resolve its schema ids new to the worker (``Codecs.prepare``): while
a schema registry is down the batch waits there, outside the lock
(docs/registry.md).

Order of effects per batch, and why (nothing lost, nothing sent twice to a
user once deduplicated by id):

1. decisions, dead letters and re-routed records are sent, and every send is
   awaited until the broker acknowledges it;
2. only then is changed customer state written to the changelog;
3. only then are the batch's records acked; Faust flushes the producer
   before it commits the offsets of acked records.

A crash before (2) replays the batch from the old state: the same decisions
with the same ids are sent again, and channels drop repeats by
``decision_id``. A crash after (2) replays events the state already holds:
they are duplicates and change nothing, and their decisions already landed.
A revocation takes the batch lock, so it never drops a partition between (1)
and (3): no ack covers a record whose state was not written.

With ``TACTFUL_PROCESSING_GUARANTEE=exactly_once`` the order above collapses
into one step per input partition: every record the partition's events made
(each added with that partition as its *origin*) and its changed state go,
with its next offset and stream time, into one Kafka transaction
(:class:`TransactionSink`, :meth:`Runtime._commit`); the records are acked to
Faust only afterwards, and Faust commits none of the input topic's offsets
itself. A crash at any point commits all of a partition's batch or none of
it. A partition whose producer another worker fenced is dropped and its
records are skipped (:attr:`Runtime.fenced`); any other failed transaction is
aborted and fails the batch, which the restart reads again against the
committed state (:mod:`streams.live.faust.transactions`). Time passing
(:meth:`Runtime.tick`) commits its decisions and state the same way, with the
partition's offset and the stream time the idle policy moved to.

Each partition's stream time survives restarts: the runtime remembers it at
every acked offset, the adapter commits it with the offset
(:meth:`Runtime.commit_metadata`, as Kafka Streams keeps its partition time in
the commit metadata), and a partition starts at the stream time its
:class:`Source` read back on assignment, so lateness is judged as it would
have been without the restart. That stream time belongs to the offset it was
read with: a commit of a lower offset (acks Faust still holds from before a
rebalance) does not carry it, and a partition whose consumer resumes below it
(Faust seeks to the committed offset after recovery, later than the read)
starts without it (:meth:`Runtime._resumed`): records processed once already
at a lower stream time would be found late. For the same reason a partition
that keeps running while its consumer goes back (the Faust adapter now holds
input until its post-recovery seek, so this is a safety net) takes back the stream time it had acked at that
offset (:meth:`Runtime._rewound`), and forgets what it acked past it.

No record the runtime writes exceeds its topic's limit
(:class:`~streams.live.limits.RecordLimits`, learnt at start-up): a dead
letter too large for the DLQ topic keeps what fits and says so in headers,
and a re-routed record drops the headers it came with if they do not fit.
A record the broker refuses would fail its batch on every restart.

Catalog versions deployed while the worker runs reach it through an optional
:class:`CatalogHook` (:mod:`streams.live.catalog`): told when a partition
starts, after each record and tick, and when it stops, it switches the
partition's processor to a version when its watermark reaches the version's
time (contract section 8).

An erase (contract section 9, ``docs/erasure.md``) rides the same order. The
step is given each record's offset, which the tombstone keeps; the forget
records (:mod:`streams.live.forget`) go to every channel topic in (1), right
after the decisions made before the erase, and the mirror consumer
(:mod:`streams.mirror.consumer`), reading them in that order, deletes the
customer's keys there; the tombstone is the state write of (2). After a crash past (2), records of the customer from
before the erase come again with lower offsets than the tombstone's and are
ignored as erased: they rebuild nothing and fire nothing.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Iterable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from streams.decisions import Arm, Decision
from streams.engine import Engine, IdleAdvance, Outcome, Processor, Rejection, Step
from streams.engine.explain import explain
from streams.engine.state import CustomerState
from streams.errors import InputError, MalformedRecord, StateError
from streams.events import ERASE_TYPE, Event
from streams.live.codecs import Codecs
from streams.live.forget import Erasure, forget_headers
from streams.live.limits import H_TRUNCATED, RecordLimits, fit_dead_letter, fit_headers
from streams.live.metrics import Metrics
from streams.live.partitioning import Partitioner
from streams.live.recent import RecentDecisions
from streams.live.topics import channels
from streams.settings import Settings
from streams.timeutil import format_time
from streams.topology import Catalog

# Bound once: each `Outcome.X` is a lookup through the enum's class machinery, and _one tests
# three of them for every record.
_ROUTED, _DUPLICATE, _ERASE = Outcome.ROUTED, Outcome.DUPLICATE, Outcome.ERASE

log = logging.getLogger(__name__)

Headers = Sequence[tuple[str, bytes]]
# A decision, the append time of the record that made it (None: time passing), its input partition.
Appended = tuple[Decision, float | None, int]
ChangelogWriter = Callable[[int, str, bytes | None], None]

H_REASON = "tactful.reason"
H_DETAIL = "tactful.detail"
H_EXCEPTION = "tactful.exception"
H_TOPIC = "tactful.source.topic"
H_PARTITION = "tactful.source.partition"
H_OFFSET = "tactful.source.offset"
H_ROUTED = "tactful.routed.from"

# Offset commit metadata carrying a partition's stream time (Kafka Streams keeps its
# partition time there too); versioned so that a later format can be told apart.
STREAM_TIME_META = "tactful/1 stream_time="
ACKED_TIMES = 4096  # (offset, stream time) pairs remembered per partition, newest last


def encode_stream_time(stream_time: int) -> str:
    return f"{STREAM_TIME_META}{stream_time}"


def decode_stream_time(metadata: str | None) -> int | None:
    """The stream time in commit metadata; None for anything else (another writer's, none)."""
    if not metadata or not metadata.startswith(STREAM_TIME_META):
        return None
    try:
        return int(metadata[len(STREAM_TIME_META) :])
    except ValueError:
        return None


class Incoming(Protocol):
    """One consumed Kafka record, as the runtime reads it.

    The Faust adapter's input messages fit as they are (built once per record in
    its consumer, ``InputMessage``): copying 2,000 of them into another type per
    batch was 7% of a busy worker's time.
    """

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
    def headers(self) -> Any: ...  # pairs, or a mapping; read only on the rare paths
    @property
    def timestamp(self) -> float | None: ...  # seconds since the epoch (the append time)


@dataclass(frozen=True, slots=True)
class Record:
    """An :class:`Incoming` of tactful's own, for drivers and tests without Faust."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...] = ()
    timestamp: float | None = None


def _headers(rec: Incoming) -> tuple[tuple[str, bytes], ...]:
    raw = rec.headers
    pairs = raw.items() if isinstance(raw, Mapping) else (raw or ())
    return tuple((str(k), bytes(v) if v is not None else b"") for k, v in pairs)


@dataclass(frozen=True)
class Offset:
    """An input partition's next offset and the metadata committed with it."""

    offset: int
    metadata: str = ""


@dataclass
class Committed:
    """What :meth:`TransactionSink.commit` did, per origin partition."""

    committed: set[int] = field(default_factory=set)
    fenced: set[int] = field(default_factory=set)


class Sink(Protocol):
    """Gathers records; sends them when asked (:mod:`streams.live.sink`).

    ``origin`` is the input partition whose processing made the record: exactly-once
    puts it in that partition's transaction (:class:`TransactionSink`)."""

    def add(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        *,
        partition: int | None = None,
        headers: Headers = (),
        origin: int | None = None,
    ) -> None: ...

    async def deliver(self) -> None:
        """Send what was added; return once the broker has acknowledged all of it."""

    async def submit(self) -> list[Awaitable[object]]:
        """Send what was added without waiting (Faust flushes before it commits)."""


class TransactionSink(Sink, Protocol):
    """A sink that commits each origin partition's records with its input offset in one
    transaction (exactly-once; :class:`streams.live.sink.TransactionalSink`)."""

    async def commit(self, offsets: Mapping[int, Offset]) -> Committed:
        """One transaction per origin partition; the fenced ones are reported, other failures raise."""


class Source(Protocol):
    """The consumer side, as the runtime sees it (:mod:`streams.live.faust` adapts Faust's)."""

    @property
    def partitions(self) -> int:
        """How many partitions the input topic has."""

    def ack(self, records: Sequence[Incoming]) -> None:
        """The records' effects have landed: their offsets may be committed."""

    def recovered(self) -> bool:
        """The state table is restored and no rebalance is under way."""

    def highwater(self, partition: int) -> int | None:
        """The partition's next offset on the broker, as last fetched; None if unknown."""

    def committed_stream_time(self, partition: int) -> int | None:
        """The stream time committed with the partition's offset (:meth:`Runtime.commit_metadata`);
        None if none was."""

    def committed_offset(self, partition: int) -> int | None:
        """The offset that stream time was committed with, as read with it; None if unknown."""


@dataclass(frozen=True)
class StateTable:
    """Where customer state lives: the map shared by the worker's partitions (a Faust
    table's data, which Faust recovers from the changelog) and the changelog writer."""

    data: MutableMapping[str, Any]
    changelog: ChangelogWriter
    # Each key of ``data`` -> its partition, where the table keeps that (Faust's memory store
    # does, for what its recovery applied): a starting partition lists its customers from it
    # instead of hashing every key (pure-Python murmur2, seconds at a million customers). The
    # runtime's own writes bypass the store, so PartitionStore keeps it up to date.
    partitions: MutableMapping[str, int] | None = None


class CatalogHook(Protocol):
    """Catalog versions that change while the worker runs (:mod:`streams.live.catalog`): it builds a
    starting partition's processor, on the version in force at its restored stream time; it is told
    after each record and tick (the watermark may have reached a version), and when it stops."""

    def processor(
        self, partition: int, store: PartitionStore, idle: IdleAdvance | None, stream_time: int | None
    ) -> Processor: ...
    def advanced(self, partition: int) -> None: ...
    def stopped(self, partition: int) -> None: ...


@dataclass(frozen=True)
class RuntimeIO:
    """Everything outside the runtime that it reads from or writes to."""

    source: Source
    sink: Sink
    state: StateTable
    codecs: Codecs
    metrics: Metrics
    # The largest record each output topic takes (learnt at start-up: streams.live.topics).
    limits: RecordLimits = field(default_factory=RecordLimits)
    catalog: CatalogHook | None = None  # None: the catalog given is the only one


class PartitionStore:
    """A partition's view of the shared state map; remembers what changed this batch."""

    def __init__(
        self,
        partition: int,
        data: MutableMapping[str, Any],
        owner: Partitioner,
        partitions: MutableMapping[str, int] | None = None,
    ) -> None:
        self.partition = partition
        self.data = data
        self.owner = owner
        self.partitions = partitions
        self.dirty: set[str] = set()

    def get(self, customer_id: str) -> CustomerState | None:
        value = self.data.get(customer_id)
        if value is None or isinstance(value, CustomerState):
            return value
        # Recovered from the changelog as bytes: decode once, keep the object.
        try:
            state = CustomerState.from_bytes(value)
        except StateError:
            log.exception(
                "customer state for one customer of partition %d is unreadable; starting it afresh", self.partition
            )
            return None
        self.data[customer_id] = state
        return state

    def put(self, customer_id: str, state: CustomerState) -> None:
        self.data[customer_id] = state
        self.dirty.add(customer_id)
        if self.partitions is not None:
            # A customer first seen live is in no recovery's index: without this a sweep
            # (a catalog switch, a partition's restart) would never see it.
            self.partitions[customer_id] = self.partition

    def delete(self, customer_id: str) -> None:
        self.data.pop(customer_id, None)
        self.dirty.add(customer_id)
        if self.partitions is not None:
            self.partitions.pop(customer_id, None)

    def customers(self) -> list[str]:
        if self.partitions is not None:
            partition = self.partition
            return [cid for cid, p in list(self.partitions.items()) if p == partition]
        return [cid for cid in list(self.data) if self.owner(cid) == self.partition]

    def flush(self, write: ChangelogWriter) -> int:
        """Write each customer changed since the last flush once (its state now, or None if deleted);
        returns the bytes written."""
        written = 0
        data, partition = self.data, self.partition
        for cid in self.dirty:
            state = data.get(cid)
            if isinstance(state, CustomerState):
                payload = state.to_bytes()
                written += len(payload)
                write(partition, cid, payload)
            else:
                write(partition, cid, None)
        self.dirty.clear()
        return written


@dataclass
class PartitionRun:
    step: Step
    processor: Processor
    store: PartitionStore
    last_sweep_wall: float
    next_offset: int | None = None  # after the last record processed
    restored_at: int | None = None  # the committed offset its restored stream time belongs to
    last_append: float | None = None  # the last processed record's append time (epoch seconds)
    caught_up_at: float | None = None  # the wall clock when a tick last found no backlog


@dataclass
class BatchOutcome:
    decisions: list[Decision] = field(default_factory=list)
    rejected: int = 0
    types: Counter[str] = field(default_factory=Counter)  # events taken in, by type label
    erased: list[Erasure] = field(default_factory=list)  # customers erased, in order


class Runtime:
    def __init__(
        self,
        settings: Settings,
        catalog: Catalog,
        io: RuntimeIO,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.catalog = catalog
        self.io = io
        self.engine = Engine(catalog)
        self.source = io.source
        self.sink = io.sink
        self.data = io.state.data
        self.decode = io.codecs.decode_touchpoint
        self.encode = io.codecs.encode_decision
        self.metrics = io.metrics
        self.clock = clock
        self.owner = Partitioner(io.source.partitions)
        self.runs: dict[int, PartitionRun] = {}
        self.assigned: set[int] = set()
        self.lock = asyncio.Lock()
        self._known_types = {*catalog.roles, ERASE_TYPE}
        self._channel_topics = [settings.topics.decision(ch) for ch in channels(catalog)]
        self._gauged: set[int] = set()  # partitions with per-partition series exported
        self.recent = RecentDecisions()  # for customer_view only
        # Per partition, (next offset, stream time) as each batch was acked, newest last:
        # what commit_metadata reads. Kept past a revocation (Faust commits after it).
        self._acked_times: dict[int, deque[tuple[int, int]]] = {}
        # Exactly-once: each partition's records and offset go in a transaction of its own.
        self.transactions: TransactionSink | None = None
        if settings.processing.guarantee == "exactly_once":
            if not hasattr(io.sink, "commit"):
                raise TypeError("exactly_once needs a sink that commits transactions (streams.live.sink)")
            self.transactions = io.sink  # type: ignore[assignment]
        # Partitions whose producer another worker fenced, with when: not processed until they
        # leave this worker's assignment (the adapter restarts the worker should they not).
        self.fenced: dict[int, float] = {}

    # -- partitions ----------------------------------------------------------------------

    def assign(self, partitions: Iterable[int]) -> None:
        """Note new partitions. Their processors start on their first record, or on the
        next tick once the table has recovered: Faust assigns before it recovers, and the
        timer index must be rebuilt from recovered state.

        ``partitions`` is the whole new assignment: a fenced partition no longer in it is
        another worker's now, and forgotten; one still in it stays fenced (its state here
        may be ahead of what was committed)."""
        partitions = set(partitions)
        for p in [p for p in self.fenced if p not in partitions]:
            del self.fenced[p]
        self.assigned.update(partitions)
        # The history of an earlier ownership describes offsets the group has moved past since:
        # from now on Faust's commits of this partition get the stream time just read, or none.
        for p in partitions - set(self.runs):
            self._acked_times[p] = self._restored_times(p)[0]

    def _restored_times(self, partition: int) -> tuple[deque[tuple[int, int]], int | None]:
        """A new history holding the partition's restored stream time, and the offset it holds from.

        The stream time holds only from the offset it was committed with: Faust may yet commit
        lower offsets (acks left from before the rebalance), and those it would put ahead of
        records processed after them, found late when read again."""
        times: deque[tuple[int, int]] = deque(maxlen=ACKED_TIMES)
        restored = self.source.committed_stream_time(partition)
        at = self.source.committed_offset(partition)
        if restored is not None:
            # Until a batch is acked; from any offset if the source cannot say which (-1).
            times.append((-1 if at is None else at, restored))
        return times, at

    async def revoke(self, partitions: Iterable[int]) -> None:
        """Drop partitions, once the batch in flight (if any) has written its state and
        acked its records: dropped mid-batch, a partition's state write was skipped while
        its records were still acked, and their offsets committed past lost state."""
        async with self.lock:
            for p in partitions:
                self.assigned.discard(p)
                if self.runs.pop(p, None) is not None and self.io.catalog is not None:
                    self.io.catalog.stopped(p)

    def _start(self, partition: int) -> PartitionRun:
        store = PartitionStore(partition, self.data, self.owner, self.io.state.partitions)
        idle = IdleAdvance(self.settings.processing.idle_after_ms, self.clock)
        # Stream time as it was when the partition's offset was last committed: without it
        # a restarted worker would evaluate events it would have found late.
        restored = self.source.committed_stream_time(partition)
        if self.io.catalog is not None:
            proc = self.io.catalog.processor(partition, store, idle, restored)  # on the version in force
        else:
            proc = Processor(self.engine, store, idle)
            proc.stream_time = restored
        times, at = self._restored_times(partition)
        self._acked_times[partition] = times
        states = []
        for cid in store.customers():
            raw = self.data.get(cid)
            # Skip decoding states without timers, open goals (their window ends are deadlines too,
            # contract 7.4) or tombstone: most have none, and recovery time matters.
            if isinstance(raw, bytes | bytearray) and b'"m":[]' in raw and b'"x":' not in raw and b'"o":' not in raw:
                continue
            state = store.get(cid)
            if state is not None and (state.timers or state.goals or state.erased_at is not None):
                states.append((cid, state))
        proc.restore_timers(states)
        proc.restore_erased(states)
        owner = self.owner
        step = Step(proc, admit=lambda ev: owner(ev.customer_id) == partition)
        run = PartitionRun(step, proc, store, self.clock(), restored_at=at if restored is not None else None)
        self.runs[partition] = run
        return run

    def _resumed(self, rec: Incoming, run: PartitionRun) -> None:
        """The partition's first record: read from before the offset its stream time was committed
        with (an offset committed between the read on assignment and the consumer's seek), the
        records up to it were processed at a lower stream time than the one restored, and would
        be found late now. The stream time starts afresh, as before it was committed at all."""
        at, run.restored_at = run.restored_at, None
        if at is None or rec.offset >= at:
            return
        log.warning(
            "input partition %d resumes at offset %d, before offset %d its stream time was committed with;"
            " not restoring it",
            rec.partition,
            rec.offset,
            at,
        )
        run.processor.stream_time = None
        self._acked_times[rec.partition] = deque(maxlen=ACKED_TIMES)

    def _rewound(self, rec: Incoming, run: PartitionRun) -> None:
        """The consumer went back on a partition that kept running here. The Faust adapter holds
        input back until the post-recovery seek (streams.live.faust.consumer), so this is a
        safety net for any source that rewinds a running partition (a seek, a record delivered
        twice). The records from ``rec`` on were processed once, at the
        stream time this partition had when every record before ``rec`` was done, not at the one
        it reached past them (which would find them late now): it takes that stream time back, as
        a restart at ``rec``'s offset would, from what it acked (a lower one if it acked no batch
        ending exactly there; none if it acked nothing up to there)."""
        partition, offset = rec.partition, rec.offset
        times = self._acked_times.get(partition)
        kept = deque((e for e in times or () if e[0] <= offset), maxlen=ACKED_TIMES)
        log.warning(
            "input partition %d read again from offset %d (processed up to %d); its stream time goes back"
            " to the one acked there",
            partition,
            offset,
            (run.next_offset or 0) - 1,
        )
        run.processor.stream_time = kept[-1][1] if kept else None
        self._acked_times[partition] = kept

    def _run(self, partition: int) -> PartitionRun:
        run = self.runs.get(partition)
        return run if run is not None else self._start(partition)

    # -- batches -------------------------------------------------------------------------

    async def handle(self, records: Sequence[Incoming]) -> BatchOutcome:
        started = time.perf_counter()
        # Schema ids new to this worker are resolved before the lock: a schema registry
        # outage makes the batch wait (codecs.py), and must not hold up a revocation.
        await self.io.codecs.prepare(r.value for r in records)
        async with self.lock:
            outcome = BatchOutcome()
            appended: list[Appended] = []
            touched: set[int] = set()
            fenced = self.fenced
            hook = self.io.catalog
            for rec in records:
                if fenced and rec.partition in fenced:
                    continue  # another worker's now; acked below so that Faust does not wait on it
                run = self._run(rec.partition)
                if run.restored_at is not None:
                    self._resumed(rec, run)
                elif run.next_offset is not None and rec.offset < run.next_offset:
                    self._rewound(rec, run)
                run.next_offset = rec.offset + 1
                run.last_append = rec.timestamp
                touched.add(rec.partition)
                decisions = self._one(rec, run, outcome, len(appended))
                appended.extend((d, rec.timestamp, rec.partition) for d in decisions)
                if hook is not None:
                    hook.advanced(rec.partition)
            if self.transactions is not None:
                await self._commit(appended, outcome.erased, touched)
                # Faust commits none of the input topic's offsets in this mode: the acks only
                # tell it that nothing is in flight (a rebalance waits for that).
                self.source.ack(records)
            else:
                await self._publish(appended, outcome.erased)
                persisted = await self._persist(touched)
                # Only records whose partition's state was written: under the lock no partition
                # is dropped mid-batch, and this keeps it so should that ever change.
                # Noted before the ack: Faust commits from its consumer thread, and a commit made
                # between the two would carry the offset without its stream time.
                self._note_acked(persisted)
                self.source.ack(records if persisted >= touched else [r for r in records if r.partition in persisted])
            outcome.decisions = [d for d, _, _ in appended]
            # Once per batch: each metric update takes a lock.
            for label, n in outcome.types.items():
                self.metrics.events.labels(label).inc(n)
        self.metrics.batch.observe(time.perf_counter() - started)
        return outcome

    def _one(self, rec: Incoming, run: PartitionRun, outcome: BatchOutcome, position: int) -> list[Decision]:
        value = rec.value
        record: object
        if value is None:
            record = MalformedRecord("malformed", "the record has no value")
        else:
            try:
                record = self.decode(value)
            except InputError as exc:
                record = exc  # the step rejects it as it rejects an invalid event
        result, decisions, ev, rejection = run.step.take(record, rec.offset)
        if rejection is not None:
            self._dead_letter(rec, rejection)
            outcome.rejected += 1
            return []
        assert ev is not None  # a step without a rejection had a valid event
        if result is _ROUTED:
            self._forward(rec, ev)
            return []
        if result is _DUPLICATE:
            self.metrics.duplicates.inc()
            return []
        if result is _ERASE:
            # After the decisions of the deadlines it made due: they were made before it.
            outcome.erased.append(Erasure(ev.customer_id, ev.occurred_at, position + len(decisions)))
            log.info("a customer of partition %d was erased", rec.partition)
        outcome.types[ev.type if ev.type in self._known_types else "other"] += 1
        return decisions

    def _forward(self, rec: Incoming, ev: Event) -> None:
        """Send a record on the wrong partition to its customer's, once, marked as routed."""
        own = ((H_ROUTED, f"{rec.topic}/{rec.partition}/{rec.offset}".encode()),)
        key = ev.customer_id.encode()
        # A valid event's value is small (MAX_RECORD_BYTES); the headers it came with need not be.
        original = _headers(rec)
        headers = fit_headers(self.io.limits.of(rec.topic), key, rec.value, original, own)
        if headers is None or (original and len(headers) == len(own)):
            headers = (*own, (H_TRUNCATED, b"headers"))
        self.sink.add(
            rec.topic, key, rec.value, partition=self.owner(ev.customer_id), headers=headers, origin=rec.partition
        )
        self.metrics.routed.inc()

    def _dead_letter(self, rec: Incoming, rejection: Rejection) -> None:
        self.metrics.rejected.labels(rejection.reason).inc()
        exc = rejection.error
        own = (
            (H_REASON, rejection.reason.encode()),
            (H_DETAIL, rejection.detail[:1000].encode("utf-8", "replace")),
            (H_EXCEPTION, (type(exc).__name__ if exc is not None else "").encode()),
            (H_TOPIC, rec.topic.encode()),
            (H_PARTITION, str(rec.partition).encode()),
            (H_OFFSET, str(rec.offset).encode()),
        )
        dlq = self.settings.topics.dlq
        # Whole if it fits the DLQ topic; else what fits, marked: a record the broker refuses
        # would fail the batch again on every restart, and stall the partition for good.
        fitted = fit_dead_letter(self.io.limits.of(dlq), rec.key, rec.value, _headers(rec), own)
        if fitted.cut:
            log.warning(
                "dead letter from %s/%d@%d cut to fit the DLQ topic (%s): %d bytes of value kept of %d",
                rec.topic,
                rec.partition,
                rec.offset,
                ",".join(fitted.cut),
                len(fitted.value or b""),
                len(rec.value or b""),
            )
        self.sink.add(dlq, fitted.key, fitted.value, headers=fitted.headers, origin=rec.partition)

    async def _publish(self, appended: list[Appended], erased: Sequence[Erasure] = ()) -> None:
        """Send the decisions, each erasure's forget records where it fell among them (and what
        else was added: dead letters, re-routed records), and wait for the broker to have all of it."""
        self._add_all(appended, erased)
        await self.sink.deliver()
        self._observe_latency(appended)

    def _add_all(self, appended: list[Appended], erased: Sequence[Erasure]) -> None:
        start = 0
        for erasure in erased:
            self._add_decisions(appended[start : erasure.position])
            self._add_forget(erasure)
            start = erasure.position
        self._add_decisions(appended[start:] if start else appended)

    def _observe_latency(self, appended: list[Appended]) -> None:
        if appended:
            now = self.clock()
            for d, appended_at, _ in appended:
                if appended_at is not None and d.emitted:
                    self.metrics.latency.observe(max(0.0, now - appended_at))

    def _add_decisions(self, appended: Sequence[Appended]) -> None:
        topics = self.settings.topics
        audit = topics.audit
        add = self.sink.add
        # Counted once per label set: each labels() lookup takes a lock and builds a key.
        counts: Counter[tuple[str, str, str, str]] = Counter()
        for d, _, origin in appended:
            value = self.encode(d)
            key = d.customer_id.encode()
            if d.emitted and d.channel is not None:  # GOAL records (channel null) are never emitted
                add(topics.decision(d.channel), key, value, origin=origin)
            add(audit, key, value, origin=origin)
            counts[(d.kind, d.channel or "", d.topology, d.status)] += 1
        for labels, n in counts.items():
            self.metrics.decisions.labels(*labels).inc(n)
        if appended:
            published = [d for d, _, _ in appended]
            self.metrics.count_fired(published, self._arm_of)
            self.recent.add(published)

    def _arm_of(self, topology: str, customer_id: str) -> str:
        """The arm of a fired match whose records do not say it (all blocked, outranked or skipped):
        the engine's own rule (contract 7.3) under the catalog in force."""
        topo = self.engine.catalog.get(topology)
        return Arm.TREATED if topo is None else self.engine._arm(topo, customer_id)

    def _add_forget(self, erasure: Erasure) -> None:
        """One forget record per channel topic (docs/erasure.md): keyed by the customer, no value."""
        key = erasure.customer_id.encode()
        self.recent.forget(erasure.customer_id)
        headers = forget_headers(erasure.erased_at)
        origin = self.owner(erasure.customer_id)
        for topic in self._channel_topics:
            self.sink.add(topic, key, None, headers=headers, origin=origin)

    async def _persist(self, partitions: Iterable[int]) -> set[int]:
        """Write changed state; called only once the batch's decisions are on the broker.
        Returns the partitions whose state was written (those still running)."""
        persisted = self._write_state(partitions)
        await self.sink.submit()
        return persisted

    def _write_state(self, partitions: Iterable[int]) -> set[int]:
        """Hand changed state to the changelog writer; the partitions still running."""
        written = 0
        persisted: set[int] = set()
        for p in partitions:
            run = self.runs.get(p)
            if run is not None:
                written += run.store.flush(self.io.state.changelog)
                persisted.add(p)
        if written:
            self.metrics.state_bytes.inc(written)
        return persisted

    async def _commit(self, appended: list[Appended], erased: Sequence[Erasure], touched: Iterable[int]) -> None:
        """Exactly-once: each partition's decisions, forget records, dead letters, re-routed records
        and state writes, with its input offset and stream time, in one transaction.

        ``touched`` are the partitions whose input moved: their offsets go in. A partition
        whose producer was fenced is dropped (:meth:`_fence`); any other failure raises
        after the transactions ended, with nothing of the failed ones visible to readers."""
        assert self.transactions is not None
        self._add_all(appended, erased)
        self._write_state(self.runs)
        offsets: dict[int, Offset] = {}
        for p in touched:
            run = self.runs.get(p)
            if run is None or run.next_offset is None:
                continue
            st = run.processor.stream_time
            offsets[p] = Offset(run.next_offset, encode_stream_time(st) if st is not None else "")
        done = await self.transactions.commit(offsets)
        for p in done.fenced:
            self._fence(p)
        self._note_acked(done.committed)
        self._observe_latency(appended)

    def _fence(self, partition: int) -> None:
        """Another worker's producer took the partition's transactional id: it owns the partition
        now. Its state here may be ahead of what was committed; it is dropped, not used again."""
        log.warning(
            "input partition %d: this worker's producer was fenced; another worker owns the partition,"
            " and this one stops processing it",
            partition,
        )
        self.runs.pop(partition, None)
        if self.io.catalog is not None:
            self.io.catalog.stopped(partition)
        self.fenced[partition] = self.clock()

    def adopt(self, catalog: Catalog) -> None:
        """A new catalog version may name event types and channels: count its types by name and
        tell its channels' topics of erasures too."""
        self._known_types |= set(catalog.roles)
        topics = [self.settings.topics.decision(ch) for ch in channels(catalog)]
        self._channel_topics += [t for t in topics if t not in self._channel_topics]

    # -- time passing --------------------------------------------------------------------

    async def tick(self) -> list[Decision]:
        """Advance idle partitions' stream time by the wall clock; sweep; refresh gauges."""
        async with self.lock:
            if self.source.recovered():
                for p in self.assigned - set(self.runs) - set(self.fenced):
                    self._start(p)
            now = self.clock()
            fired: list[Appended] = []
            for p, run in self.runs.items():
                proc = run.processor
                backlog = self._backlog(p, run)
                fired.extend((d, None, p) for d in proc.advance_idle(backlog))
                if self.io.catalog is not None:
                    self.io.catalog.advanced(p)
                if (now - run.last_sweep_wall) * 1000 >= self.settings.processing.sweep_every_ms:
                    proc.sweep(run.store.customers())
                    run.last_sweep_wall = now
                self._gauge(p, run, now, backlog)
            for p in self._gauged - set(self.runs):
                self.metrics.forget_partition(str(p))
            self._gauged = set(self.runs)
            if self.transactions is not None:
                # The offsets stay; the stream time the idle policy moved goes with them.
                await self._commit(fired, (), [p for p, run in self.runs.items() if run.store.dirty])
            else:
                await self._publish(fired)
                self._note_acked(await self._persist(list(self.runs)))
            self.metrics.customers.set(len(self.data))
            return [d for d, _, _ in fired]

    def _gauge(self, partition: int, run: PartitionRun, now: float, backlog: int | None) -> None:
        """Refresh the partition's gauges (their exact meanings: docs/metrics.md).

        Skew and watermark lag are signed on purpose: a stream time ahead of the
        wall clock makes every live event late, and must not read as 0.
        """
        m, label, proc = self.metrics, str(partition), run.processor
        wm = proc.watermark
        if wm is not None:
            m.watermark_lag.labels(label).set(now - wm / 1000)
        st = proc.stream_time
        if st is not None:
            behind = now - st / 1000
            m.stream_time_behind.labels(label).set(max(0.0, behind))
            m.stream_time_ahead.labels(label).set(max(0.0, -behind))
        # Until its first record the next offset is unknown (the runtime does not read
        # committed offsets), and so is the end while the consumer has no high watermark:
        # no lag is exported rather than a guess.
        if run.next_offset is not None and backlog is not None:
            records = max(0, backlog)
            m.consumer_lag_records.labels(label).set(records)
            if records == 0:
                run.caught_up_at = now
                m.consumer_lag_seconds.labels(label).set(0.0)
            else:
                # Every unprocessed record was appended after the last processed one and
                # after the last tick that saw none waiting: the later of the two bounds
                # the oldest one's age from above.
                since = max((t for t in (run.last_append, run.caught_up_at) if t is not None), default=None)
                if since is not None:
                    m.consumer_lag_seconds.labels(label).set(max(0.0, now - since))
        else:
            m.forget_lag(label)  # unknown now: an old value would be a stale claim
        m.timers.labels(label).set(proc.pending_timers())

    def _note_acked(self, partitions: Iterable[int]) -> None:
        """Remember each partition's stream time at its acked offset, for commit_metadata."""
        for p in partitions:
            run = self.runs.get(p)
            times = self._acked_times.get(p)
            if run is None or times is None or run.next_offset is None or run.processor.stream_time is None:
                continue
            entry = (run.next_offset, run.processor.stream_time)
            if not times or times[-1] != entry:
                times.append(entry)

    def commit_metadata(self, partition: int, offset: int) -> str | None:
        """What to commit with ``offset`` of ``partition``: the stream time when every record
        before ``offset`` had been processed (and nothing after it). Called from the
        consumer's thread, so it only reads (a copy of) the partition's history."""
        times = self._acked_times.get(partition)
        for acked, stream_time in reversed(list(times or ())):
            if acked <= offset:
                return encode_stream_time(stream_time)
        return None

    def _backlog(self, partition: int, run: PartitionRun) -> int | None:
        """Records of the partition not yet processed, by the broker's last known high watermark."""
        high = self.source.highwater(partition)
        return None if high is None else high - (run.next_offset or 0)

    # -- queries -------------------------------------------------------------------------

    def owns(self, customer_id: str) -> bool:
        return self.owner(customer_id) in self.runs

    def customer_view(self, customer_id: str, *, raw: bool = False) -> dict[str, Any] | None:
        """The customer's state explained for a person (:func:`streams.engine.explain.explain`), with the
        raw state too when ``raw``; None when this worker holds none: not its partition, an unknown
        customer, or an erased one with nothing since (contract section 9)."""
        run = self.runs.get(self.owner(customer_id))
        if run is None:
            return None
        state = run.store.get(customer_id)
        if state is None or state.holds_only_tombstone():
            return None
        now, watermark = run.processor.stream_time, run.processor.watermark
        view: dict[str, Any] = {
            "customer_id": customer_id,
            "partition": run.store.partition,
            # Everything is judged at the partition's stream time, not the wall clock.
            "stream_time": None if now is None else format_time(now),
            "watermark": None if watermark is None else format_time(watermark),
            **explain(self.engine, customer_id, state, now, self.recent.of(customer_id)),
        }
        if raw:
            view["state"] = state.to_obj()
        return view
