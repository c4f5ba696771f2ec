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
quiet, caught-up partition's stream time on every tick.

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
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from streams.decisions import Decision
from streams.engine import Engine, IdleAdvance, Outcome, Processor, Rejection, Step
from streams.engine.state import CustomerState
from streams.errors import InputError, MalformedRecord, StateError
from streams.events import Event
from streams.live.codecs import Codecs
from streams.live.metrics import Metrics
from streams.live.partitioning import Partitioner
from streams.settings import Settings
from streams.topology import Catalog

log = logging.getLogger(__name__)

Headers = Sequence[tuple[str, bytes]]
ChangelogWriter = Callable[[int, str, bytes | None], None]

H_REASON = "tactful.reason"
H_DETAIL = "tactful.detail"
H_EXCEPTION = "tactful.exception"
H_TOPIC = "tactful.source.topic"
H_PARTITION = "tactful.source.partition"
H_OFFSET = "tactful.source.offset"
H_ROUTED = "tactful.routed.from"


class Incoming(Protocol):
    """One consumed Kafka record, as the runtime reads it.

    Faust's consumer messages fit as they are: copying 2,000 of them into
    another type per batch was 7% of a busy worker's time.
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


class Sink(Protocol):
    """Gathers records; sends them when asked (:mod:`streams.live.sink`)."""

    def add(
        self, topic: str, key: bytes | None, value: bytes | None, *, partition: int | None = None, headers: Headers = ()
    ) -> None: ...

    async def deliver(self) -> None:
        """Send what was added; return once the broker has acknowledged all of it."""

    async def submit(self) -> list[Awaitable[object]]:
        """Send what was added without waiting (Faust flushes before it commits)."""


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


@dataclass(frozen=True)
class StateTable:
    """Where customer state lives: the map shared by the worker's partitions (a Faust
    table's data, which Faust recovers from the changelog) and the changelog writer."""

    data: MutableMapping[str, Any]
    changelog: ChangelogWriter


@dataclass(frozen=True)
class RuntimeIO:
    """Everything outside the runtime that it reads from or writes to."""

    source: Source
    sink: Sink
    state: StateTable
    codecs: Codecs
    metrics: Metrics


class PartitionStore:
    """A partition's view of the shared state map; remembers what changed this batch."""

    def __init__(self, partition: int, data: MutableMapping[str, Any], owner: Partitioner) -> None:
        self.partition = partition
        self.data = data
        self.owner = owner
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

    def delete(self, customer_id: str) -> None:
        self.data.pop(customer_id, None)
        self.dirty.add(customer_id)

    def customers(self) -> list[str]:
        return [cid for cid in list(self.data) if self.owner(cid) == self.partition]

    def flush(self, write: ChangelogWriter) -> int:
        written = 0
        for cid in self.dirty:
            state = self.data.get(cid)
            payload = state.to_bytes() if isinstance(state, CustomerState) else None
            write(self.partition, cid, payload)
            written += len(payload) if payload else 0
        self.dirty.clear()
        return written


@dataclass
class PartitionRun:
    step: Step
    processor: Processor
    store: PartitionStore
    last_sweep_wall: float
    next_offset: int | None = None  # after the last record processed


@dataclass
class BatchOutcome:
    decisions: list[Decision] = field(default_factory=list)
    rejected: int = 0
    types: Counter[str] = field(default_factory=Counter)  # events taken in, by type label


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
        self._known_types = set(catalog.roles)

    # -- partitions ----------------------------------------------------------------------

    def assign(self, partitions: Iterable[int]) -> None:
        """Note new partitions. Their processors start on their first record, or on the
        next tick once the table has recovered: Faust assigns before it recovers, and the
        timer index must be rebuilt from recovered state."""
        self.assigned.update(partitions)

    def revoke(self, partitions: Iterable[int]) -> None:
        for p in partitions:
            self.assigned.discard(p)
            self.runs.pop(p, None)

    def _start(self, partition: int) -> PartitionRun:
        store = PartitionStore(partition, self.data, self.owner)
        proc = Processor(self.engine, store, IdleAdvance(self.settings.processing.idle_after_ms, self.clock))
        states = []
        for cid in store.customers():
            raw = self.data.get(cid)
            # Skip decoding states without timers: most have none, and recovery time matters.
            if isinstance(raw, bytes | bytearray) and b'"m":[]' in raw:
                continue
            state = store.get(cid)
            if state is not None and state.timers:
                states.append((cid, state))
        proc.restore_timers(states)
        owner = self.owner
        step = Step(proc, admit=lambda ev: owner(ev.customer_id) == partition)
        run = PartitionRun(step, proc, store, self.clock())
        self.runs[partition] = run
        return run

    def _run(self, partition: int) -> PartitionRun:
        run = self.runs.get(partition)
        return run if run is not None else self._start(partition)

    # -- batches -------------------------------------------------------------------------

    async def handle(self, records: Sequence[Incoming]) -> BatchOutcome:
        started = time.perf_counter()
        async with self.lock:
            outcome = BatchOutcome()
            appended: list[tuple[Decision, float | None]] = []
            touched: set[int] = set()
            for rec in records:
                run = self._run(rec.partition)
                run.next_offset = rec.offset + 1
                touched.add(rec.partition)
                decisions = self._one(rec, run, outcome)
                appended.extend((d, rec.timestamp) for d in decisions)
            await self._publish(appended)
            await self._persist(touched)
            self.source.ack(records)
            outcome.decisions = [d for d, _ in appended]
            # Once per batch: each metric update takes a lock.
            for label, n in outcome.types.items():
                self.metrics.events.labels(label).inc(n)
        self.metrics.batch.observe(time.perf_counter() - started)
        return outcome

    def _one(self, rec: Incoming, run: PartitionRun, outcome: BatchOutcome) -> list[Decision]:
        value = rec.value
        record: object
        if value is None:
            record = MalformedRecord("malformed", "the record has no value")
        else:
            try:
                record = self.decode(value)
            except InputError as exc:
                record = exc  # the step rejects it as it rejects an invalid event
        result, decisions, ev, rejection = run.step.take(record)
        if rejection is not None:
            self._dead_letter(rec, rejection)
            outcome.rejected += 1
            return []
        assert ev is not None  # a step without a rejection had a valid event
        if result is Outcome.ROUTED:
            self._forward(rec, ev)
            return []
        if result is Outcome.DUPLICATE:
            self.metrics.duplicates.inc()
            return []
        outcome.types[ev.type if ev.type in self._known_types else "other"] += 1
        return decisions

    def _forward(self, rec: Incoming, ev: Event) -> None:
        """Send a record on the wrong partition to its customer's, once, marked as routed."""
        headers = (*_headers(rec), (H_ROUTED, f"{rec.topic}/{rec.partition}/{rec.offset}".encode()))
        self.sink.add(
            rec.topic, ev.customer_id.encode(), rec.value, partition=self.owner(ev.customer_id), headers=headers
        )
        self.metrics.routed.inc()

    def _dead_letter(self, rec: Incoming, rejection: Rejection) -> None:
        self.metrics.rejected.labels(rejection.reason).inc()
        exc = rejection.error
        headers = (
            *_headers(rec),
            (H_REASON, rejection.reason.encode()),
            (H_DETAIL, rejection.detail[:1000].encode("utf-8", "replace")),
            (H_EXCEPTION, (type(exc).__name__ if exc is not None else "").encode()),
            (H_TOPIC, rec.topic.encode()),
            (H_PARTITION, str(rec.partition).encode()),
            (H_OFFSET, str(rec.offset).encode()),
        )
        self.sink.add(self.settings.topics.dlq, rec.key, rec.value, headers=headers)

    async def _publish(self, appended: list[tuple[Decision, float | None]]) -> None:
        """Send the decisions (and what else was added: dead letters, re-routed records)
        and wait for the broker to have all of it."""
        s = self.settings
        add = self.sink.add
        for d, _ in appended:
            value = self.encode(d)
            key = d.customer_id.encode()
            if d.emitted:
                add(s.topics.decision(d.channel), key, value)
            add(s.topics.audit, key, value)
            self.metrics.decisions.labels(d.kind, d.channel, d.topology, d.status).inc()
        await self.sink.deliver()
        if appended:
            now = self.clock()
            for d, appended_at in appended:
                if appended_at is not None and d.emitted:
                    self.metrics.latency.observe(max(0.0, now - appended_at))

    async def _persist(self, partitions: Iterable[int]) -> None:
        """Write changed state; called only once the batch's decisions are on the broker."""
        written = 0
        for p in partitions:
            run = self.runs.get(p)
            if run is not None:
                written += run.store.flush(self.io.state.changelog)
        if written:
            self.metrics.state_bytes.inc(written)
        await self.sink.submit()

    # -- time passing --------------------------------------------------------------------

    async def tick(self) -> list[Decision]:
        """Advance idle partitions' stream time by the wall clock; sweep; refresh gauges."""
        async with self.lock:
            if self.source.recovered():
                for p in self.assigned - set(self.runs):
                    self._start(p)
            now = self.clock()
            fired: list[tuple[Decision, float | None]] = []
            for p, run in self.runs.items():
                proc = run.processor
                fired.extend((d, None) for d in proc.advance_idle(self._backlog(p, run)))
                if (now - run.last_sweep_wall) * 1000 >= self.settings.processing.sweep_every_ms:
                    proc.sweep(run.store.customers())
                    run.last_sweep_wall = now
                wm = proc.watermark
                if wm is not None:
                    self.metrics.watermark_lag.labels(str(p)).set(max(0.0, now - wm / 1000))
                self.metrics.timers.labels(str(p)).set(proc.pending_timers())
            await self._publish(fired)
            await self._persist(list(self.runs))
            self.metrics.customers.set(len(self.data))
            return [d for d, _ in fired]

    def _backlog(self, partition: int, run: PartitionRun) -> int | None:
        """Records of the partition not yet processed, by the broker's last known high watermark."""
        high = self.source.highwater(partition)
        return None if high is None else high - (run.next_offset or 0)

    # -- queries -------------------------------------------------------------------------

    def owns(self, customer_id: str) -> bool:
        return self.owner(customer_id) in self.runs

    def customer_view(self, customer_id: str) -> dict[str, Any] | None:
        run = self.runs.get(self.owner(customer_id))
        if run is None:
            return None
        state = run.store.get(customer_id)
        if state is None:
            return {"customer_id": customer_id, "partition": run.store.partition, "state": None}
        now = run.processor.stream_time
        return {
            "customer_id": customer_id,
            "partition": run.store.partition,
            "stream_time": now,
            "watermark": run.processor.watermark,
            # Active now, in the partition's stream time: released ones end at their release.
            "active_suppressions": [
                {
                    "topology": s.topology,
                    "channel": s.channel,
                    "category": s.category,
                    "start": s.start,
                    "end": s.end,
                    "decision_id": s.decision_id,
                }
                for s in state.suppressions
                if now is None or s.active_at(now)
            ],
            "state": state.to_obj(),
        }
