"""A Faust consumer that hands the input topic to the runtime a fetch at a time.

Faust's consumer loop awaits ``wait_first(callback(message), suspend_flow)``
for every message, then the conductor builds an ``Event``, queues it, and a
stream takes it off again: measured, that is most of a worker's time. This
subclass keeps Faust's loop as it is for every other topic, and keeps its
bookkeeping for the input topic too (read offsets, offset gaps, the commit
cadence, the flow and generation checks), but does it once per partition of
a fetch instead of once per message: its ``getmany`` is inlined, the input
records become :class:`InputMessage` (not Faust's twenty-field
``ConsumerMessage``), and a fetch's input goes to :class:`BatchHandler` in
runs of up to ``max_batch``, one partition after another. The state table's
changelog records of a recovery are offered to ``restore`` first
(:mod:`streams.live.faust.recovery`), which applies them in place; the rest
(the last records of a recovery, standbys) go through the conductor.

The handler puts one :class:`InFlight` marker per batch in Faust's unacked
set while the runtime processes it (a rebalance waits for it); the runtime
acks the messages (through :class:`~streams.live.faust.source.FaustSource`,
:func:`ack_all`: Faust's ``ack`` in one pass) only after it has published
and persisted the batch, so Faust still never commits past an event whose
effects have not landed. Messages of a stale
consumer generation (a rebalance started) are dropped, untracked and *not*
acked: Faust's own stream acks them, but an ack is all Faust's commit looks
at, and an ack of a partition assigned here again (its bookkeeping is
cleared on revocation, so the ack lands in the new generation's) let it
commit past a record nobody processed. The rebalance's seek to the
committed offsets reads them again, here or on their new owner.

Faust resumes the input partitions after a rebalance *before* it seeks them
to their committed offsets (``on_recovery_completed``: resume, then
``perform_seek``, one broker request per partition), so input fetched from
wherever the fetcher stood was handed over and processed, then read again
after the seek; worse, a fetch taken before the seek and walked after it
moved the read offsets past the seek, and Faust recorded the records in
between as a gap it then committed, unprocessed (``make chaos``: about 800
records a partition lost after a restart during a broker outage). The
consumer therefore holds the input topic's partitions paused from their
assignment until Faust's ``perform_seek`` has returned
(:meth:`resume_partitions` defers them, :meth:`perform_seek` releases
them): no input is fetched, handed over or counted in a read offset before
the seek, so the seek sends back nothing processed since the assignment (what
was processed before it and not committed is read again, as at-least-once
reads it after any restart).

Commits of the input topic's offsets carry the partition's stream time in
their metadata (``commit_metadata``, :meth:`Runtime.commit_metadata
<streams.live.runtime.Runtime.commit_metadata>`): Faust commits through the
aiokafka consumer's public ``commit`` with empty metadata, and the consumer
thread's ``commit`` is wrapped to fill it in, as Kafka Streams keeps its
partition time there.

The worker's consumer reads ``read_committed`` (the aiokafka consumer's
isolation level, set where the thread builds it): with exactly-once, aborted
records are never processed and aborted state writes never restored; without
transactions it reads what it read before. In exactly-once mode
(``transactional``) the input topic's offsets are committed by the batches'
transactions (:mod:`streams.live.faust.transactions`), so the wrapped
``commit`` drops them from Faust's own commits. ``highwaters``, which Faust's
table recovery asks for how far each changelog partition reaches, can be
answered by ``recovery_ends`` (where the last committed record is; the end
offset lies past transaction markers).

This module overrides private methods of Faust's consumer and reads its
private fields; each is listed in :mod:`streams.live.faust` and pinned by
``tests/live/faust/test_private_api.py``.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, cast

from aiokafka.structs import OffsetAndMetadata
from faust.transport.consumer import CONSUMER_FETCHING
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread
from faust.transport.drivers.aiokafka import Consumer as AIOKafkaConsumer
from faust.types.tuples import ack_lock
from mode import Service
from mode.utils.futures import notify

from streams.live.faust.bootstrap import patient

log = logging.getLogger(__name__)

EXIT_BATCH_FAILED = 70

BatchCallback = Callable[[list[Any]], Awaitable[None]]
CommitMetadata = Callable[[int, int], str | None]  # (partition, offset) -> metadata
# The end (next offset) of the changelog partitions among these, for recovery; others left out.
RecoveryEnds = Callable[[list[Any]], Awaitable[dict[Any, int]]]
# Restores a table from a changelog message in place; False: the message is Faust's to handle.
Restore = Callable[[Any], bool]


def without_topic(commit: Callable[..., Awaitable[Any]], topic: str) -> Callable[..., Any]:
    """aiokafka's ``commit``, leaving out ``topic``'s offsets (committed in transactions instead)."""

    async def commit_others(offsets: Any = None) -> Any:
        if offsets is None:
            return None  # "everything consumed": never asked by Faust, which names its offsets
        others = {tp: value for tp, value in offsets.items() if tp.topic != topic}
        if others:
            return await commit(others)
        return None

    return commit_others


def with_metadata(commit: Callable[..., Awaitable[Any]], topic: str, metadata: CommitMetadata) -> Callable[..., Any]:
    """aiokafka's ``commit``, with ``metadata(partition, offset)`` committed for ``topic``'s partitions."""

    async def commit_with_metadata(offsets: Any = None) -> Any:
        if offsets:
            filled = {}
            for tp, value in offsets.items():
                offset = value.offset if isinstance(value, OffsetAndMetadata) else value
                if tp.topic == topic and isinstance(offset, int):
                    meta = metadata(tp.partition, offset)
                    if meta is not None:
                        value = OffsetAndMetadata(offset, meta)
                filled[tp] = value
            offsets = filled
        return await commit(offsets)

    return commit_with_metadata


class InputMessage:
    """One input record, as the runtime reads it and as Faust's ack bookkeeping reads it.

    In place of Faust's ``ConsumerMessage`` (twenty fields, most never read here):
    built once per record, it was a sizable share of the consumer's cost. It fits
    :class:`~streams.live.runtime.Incoming` (``timestamp`` in seconds, as Faust's),
    Faust's ``Consumer.ack`` (``acked``, ``tp``, weak references) and the batch
    handler's generation check.
    """

    __slots__ = (
        "__weakref__",
        "acked",
        "generation_id",
        "headers",
        "key",
        "offset",
        "partition",
        "timestamp",
        "topic",
        "tp",
        "value",
    )

    def __init__(
        self,
        tp: Any,
        generation_id: int,
        offset: int,
        key: bytes | None,
        value: bytes | None,
        headers: Any,
        timestamp: float | None,
    ) -> None:
        self.topic: str = tp.topic
        self.partition: int = tp.partition
        self.tp = tp
        self.generation_id = generation_id
        self.offset = offset
        self.key = key
        self.value = value
        self.headers = headers
        self.timestamp = timestamp
        self.acked = False

    def __repr__(self) -> str:
        return f"<InputMessage {self.topic}/{self.partition}@{self.offset}>"


class InFlight:
    """Stands in Faust's ``unacked`` set for a whole batch while the runtime processes it.

    Faust's rebalance and shutdown (``wait_empty``) wait until that weak set holds
    nothing unacked; before, every message was added to it and taken out again by its
    ack, two weak-reference operations per record. One of these per batch says the
    same: something is in flight until :class:`BatchHandler` marks it acked (and it
    leaves the set when it is freed, as an unacked message nobody held did).
    """

    __slots__ = ("__weakref__", "acked", "count", "refcount")

    def __init__(self, count: int) -> None:
        self.acked = False
        self.refcount = 0  # read by Faust's wait_empty warning
        self.count = count

    def __repr__(self) -> str:
        return f"<InFlight batch of {self.count}>"


def ack_all(consumer: Any, messages: Iterable[Any]) -> None:
    """Faust's ``Consumer.ack`` for each message, in one pass under its lock.

    The same bookkeeping (faust/transport/consumer.py ``ack``, pinned by
    ``tests/live/faust/test_private_api.py``): each offset at or past the committed
    one goes into the partition's acked list and index once, ``_n_acked`` counts it
    and a waiting ``wait_empty`` is woken, once. Per message it cost a lock, three
    dictionary lookups and a weak-set discard; the runtime acks thousands at a time.
    """
    acks_enabled_for = consumer.app.topics.acks_enabled_for
    committed_offset = consumer._committed_offset
    acked_index = consumer._acked_index
    acked_lists = consumer._acked
    unacked = consumer._unacked_messages
    enabled: dict[str, bool] = {}
    n = 0
    with ack_lock:
        tp: Any = None
        committed: int | None = None
        index: set[int] = set()
        acked: list[int] = []
        for m in messages:
            if m.acked:
                continue
            m.acked = True
            topic = m.topic
            on = enabled.get(topic)
            if on is None:
                on = enabled[topic] = bool(acks_enabled_for(topic))
            if not on:
                continue
            if m.tp is not tp:
                tp = m.tp
                committed = committed_offset[tp]
                index = acked_index[tp]
                acked = acked_lists[tp]
            offset = m.offset
            if (committed is None or offset >= committed) and offset not in index:
                index.add(offset)
                acked.append(offset)
                n += 1
                if not isinstance(m, InputMessage):
                    unacked.discard(m)  # tracked by Faust's own path; ours never are (InFlight)
        consumer._n_acked += n
        if any(enabled.values()):
            notify(consumer._waiting_for_ack)


class BatchHandler:
    """Processes one fetch's worth of input messages; drops the stale ones unacked.

    ``process`` (the runtime's ``handle``) acks the messages it is given once
    their effects have landed. While it runs, one :class:`InFlight` in Faust's
    ``unacked`` set stands for the batch.
    """

    def __init__(
        self,
        app: Any,
        process: Callable[[list[Any]], Awaitable[object]],
        ready: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.app = app
        self.process = process
        self.ready = ready  # awaited before each batch (the assigned partitions' stream times)

    async def __call__(self, messages: list[Any]) -> None:
        app = self.app
        consumer = app.consumer
        unacked = consumer.unacked
        generation = app.consumer_generation_id
        active = app.flow_control.is_active()
        if active and all(m.generation_id == generation for m in messages):
            live, stale = messages, []
        else:
            live = [m for m in messages if active and m.generation_id == generation]
            stale = [m for m in messages if not active or m.generation_id != generation]
        if not live:
            self._dropped(stale)
            return
        in_flight = InFlight(len(live))
        unacked.add(in_flight)
        try:
            await self._process(app, generation, live, stale)
        finally:
            # Faust's wait_empty drops acked entries; the weak set loses it anyway once it is
            # freed, as it did a message nobody acked. The runtime's ack woke wait_empty.
            in_flight.acked = True

    async def _process(self, app: Any, generation: int, live: list[Any], stale: list[Any]) -> None:
        if self.ready is not None:
            await self.ready()
            # A rebalance may have come while this batch waited for the new assignment's
            # stream times: what it fetched before belongs to the old generation, maybe to
            # another worker now, and is read again from the committed offsets.
            if app.consumer_generation_id != generation:
                generation = app.consumer_generation_id
                still = [m for m in live if m.generation_id == generation]
                stale += [m for m in live if m.generation_id != generation]
                live = still
        if live:
            try:
                await self.process(live)
            except asyncio.CancelledError:
                raise  # shutdown mid-batch: nothing acked, so the batch is read again
            except BaseException:
                # State in memory is ahead of what landed; a Faust stop would commit
                # acked offsets and carry on. Leave at once and recover from the
                # changelog and the committed offsets instead.
                log.critical("batch failed; exiting so that the batch is processed again", exc_info=True)
                logging.shutdown()
                os._exit(EXIT_BATCH_FAILED)
        self._dropped(stale)

    @staticmethod
    def _dropped(stale: list[Any]) -> None:
        # The stale ones are neither tracked nor acked: an ack is what lets Faust commit past
        # them, and they were not processed. The rebalance's seek reads them again.
        if stale:
            log.debug("dropped %d input messages of a stale generation or a suspended flow", len(stale))


def batching_consumer(
    input_topic: str,
    handle: BatchCallback,
    max_batch: int,
    fetch_max_wait_ms: int = 100,
    commit_metadata: CommitMetadata | None = None,
    *,
    transactional: bool = False,
    recovery_ends: RecoveryEnds | None = None,
    restore: Restore | None = None,
    start_timeout_s: float | None = None,
) -> type[AIOKafkaConsumer]:
    """A consumer class for ``transport.Consumer`` that batches ``input_topic``.

    A fetch can hold a whole partition's backlog (tens of thousands of
    records); batches are cut at ``max_batch`` so that latency and memory
    stay bounded while a worker catches up. ``fetch_max_wait_ms`` replaces
    the 1.5 s that Faust hard-codes for the broker's long poll.
    ``commit_metadata(partition, offset)`` is committed with the input topic's offsets.
    ``restore(message)`` is offered every other topic's message first
    (:class:`~streams.live.faust.recovery.ChangelogRestore`): what it takes skips Faust's callback.
    With ``start_timeout_s`` the consumer's start waits that long for a broker that is away
    (:mod:`~streams.live.faust.bootstrap`).
    """

    class ConsumerThread(AIOKafkaConsumerThread):
        def _create_worker_consumer(self, transport: Any) -> Any:
            consumer = super()._create_worker_consumer(transport)
            # Read by AIOKafkaConsumer.start() when it builds its fetcher; pinned by
            # tests/live/faust/test_private_api.py so that an aiokafka upgrade cannot drop it silently.
            consumer._fetch_max_wait_ms = fetch_max_wait_ms
            # Read by start() too (pinned likewise); Faust reads committed only in its own
            # exactly-once mode, which tactful does not use (streams/live/faust/transactions.py).
            consumer._isolation_level = "read_committed"
            if start_timeout_s is not None:
                patient(consumer._client, start_timeout_s)  # start() bootstraps it first (pinned)
            if transactional:
                consumer.commit = without_topic(consumer.commit, input_topic)
            elif commit_metadata is not None:
                # Faust's thread commits through this public method (AIOKafkaConsumerThread._commit,
                # pinned by tests/live/faust/test_private_api.py), with empty metadata.
                consumer.commit = with_metadata(consumer.commit, input_topic, commit_metadata)
            return consumer

    class BatchingConsumer(AIOKafkaConsumer):
        def _new_consumer_thread(self) -> AIOKafkaConsumerThread:
            return ConsumerThread(self, loop=self.loop, beacon=self.beacon)

        # The input partitions Faust resumed before seeking them: released by perform_seek.
        _held_input: set[Any] | None = None

        def _held(self) -> set[Any]:
            if self._held_input is None:
                self._held_input = set()
            return self._held_input

        async def on_partitions_assigned(self, assigned: set[Any], generation_id: int = 0) -> None:
            # Faust makes every assigned partition active here, pausing them only later (the app's
            # rebalance callback): a worker that held none before, its flow never stopped, could
            # fetch input in between. Paused now, they wait for the seek like any other.
            self.pause_partitions({tp for tp in assigned if tp.topic == input_topic})
            await super().on_partitions_assigned(assigned, generation_id)

        def resume_partitions(self, tps: Any) -> None:
            # Faust resumes the input partitions just before it seeks them to their committed
            # offsets (on_recovery_completed); fetched in between, input would be processed and
            # then read again, or (a fetch walked across the seek) skipped as a gap.
            tps = set(tps)
            held = {tp for tp in tps if tp.topic == input_topic}
            self._held().update(held)
            super().resume_partitions(tps - held)

        async def perform_seek(self) -> None:
            try:
                await super().perform_seek()
            finally:
                # Released even if the seek failed: a held partition was never handed out, so
                # the fetcher stands where the assignment put it, at the committed offset.
                held, self._held_input = self._held(), set()
                assigned = self.assignment() if held else set()
                if held & assigned:
                    super().resume_partitions(held & assigned)

        async def highwaters(self, *partitions: Any) -> Any:
            found: dict[Any, int] = {}
            if recovery_ends is not None:
                found = dict(await recovery_ends(list(partitions)))
            rest = [tp for tp in partitions if tp not in found]
            if rest:
                found.update(await super().highwaters(*rest))
            return found

        async def _drain_messages(self, fetcher: Any) -> None:  # pragma: no cover - exercised live
            # Faust's loop (faust/transport/consumer.py) with its getmany inlined: the input
            # topic's records go to the runtime a partition's run at a time, other topics'
            # one message at a time as Faust hands them over.
            consumer_should_stop = cast(Service, self)._stopped.is_set
            fetcher_should_stop = cast(Service, fetcher)._stopped.is_set
            set_flag, unset_flag = self.diag.set_flag, self.diag.unset_flag
            try:
                while not (consumer_should_stop() or fetcher_should_stop()):
                    set_flag(CONSUMER_FETCHING)
                    await self.sleep(0)
                    if self.should_stop:
                        continue
                    records, active_partitions = await self._wait_next_records(1.0)
                    generation = self.app.consumer_generation_id
                    if records is None or self.should_stop:
                        continue
                    if self.flow_active:
                        await self._deliver(records, active_partitions, generation)
                    else:
                        # As Faust's getmany: a fetch that came back after the flow stopped.
                        try:
                            await self.perform_seek()
                        except Exception as exc:
                            log.warning("exception performing seek when flow not active %r", exc)
                    unset_flag(CONSUMER_FETCHING)
            except self.consumer_stopped_errors:
                if self.transport.app.should_stop:
                    return
                raise
            except asyncio.CancelledError:
                if self.transport.app.should_stop:
                    return
                raise
            finally:
                unset_flag(CONSUMER_FETCHING)

        def _moved_on(self, generation: int) -> bool:
            """The flow stopped or a rebalance began since the fetch: hand over no more of it
            (Faust's getmany checks before each message; nothing changes but across an await)."""
            return not self.flow_active or self.app.consumer_generation_id != generation

        async def _deliver(self, records: Any, active_partitions: Any, generation: int) -> None:
            """One fetch: Faust's getmany and drain loop body, the input topic a run at a time.

            Per input partition, what Faust did per message is done once: the active-partition
            test, the highwater it reports to the monitor, the read offset, the commit cadence,
            and the gap test, which walks the offsets only when the run is not contiguous.
            """
            read_offset = self._read_offset
            commit_every = self._commit_every
            buffered = self._buffered_partitions
            monitor = self.app.monitor
            batch: list[Any] = []
            for tp, recs in records.items():
                if not recs:
                    continue
                if self._moved_on(generation):
                    break
                if active_partitions is not None and tp not in active_partitions and tp not in buffered:
                    continue
                monitor.track_tp_end_offset(tp, self.highwater(tp))
                if tp.topic != input_topic:
                    if batch:  # keep order across topics
                        await handle(batch)
                        batch = []
                    if not await self._deliver_others(tp, recs, generation):
                        break
                    continue
                r_offset = read_offset[tp]
                if r_offset is not None and recs[0].offset < r_offset:
                    recs = [r for r in recs if r.offset >= r_offset]  # already delivered
                    if not recs:
                        continue
                gaps = self.app.topics.acks_enabled_for(input_topic)
                i, n = 0, len(recs)
                while i < n:
                    if i and self._moved_on(generation):
                        break
                    if commit_every is not None and self._n_acked >= commit_every:
                        self._n_acked = 0
                        await self.commit()
                    run = recs[i : i + max_batch - len(batch)]
                    i += len(run)
                    # Only for the records about to be handed over, as Faust's loop did: a gap
                    # recorded for a record never handed over could let a commit pass it.
                    if gaps and not await self._add_gaps(tp, r_offset, run, generation):
                        break
                    r_offset = run[-1].offset
                    batch += [
                        InputMessage(
                            tp,
                            generation,
                            r.offset,
                            r.key,
                            r.value,
                            r.headers,
                            None if r.timestamp is None else r.timestamp / 1000.0,
                        )
                        for r in run
                    ]
                    read_offset[tp] = run[-1].offset
                    if len(batch) >= max_batch:
                        await handle(batch)
                        batch = []
            if batch:
                await handle(batch)

        async def _add_gaps(self, tp: Any, r_offset: int | None, recs: list[Any], generation: int) -> bool:
            """As Faust's loop: a record more than one past the last one read leaves a gap
            (compaction, transaction markers) that Faust's commit may pass; none after a read
            offset of 0 or None, as there. False if a rebalance began meanwhile (``_add_gap``
            yields): the rest would land in the next generation's bookkeeping."""
            first = recs[0].offset
            if r_offset and first - r_offset > 1:
                if self._moved_on(generation):
                    return False
                await self._add_gap(tp, r_offset + 1, first)
            if recs[-1].offset - first == len(recs) - 1:
                return not self._moved_on(generation)  # contiguous: nothing between them
            previous = first
            for r in recs[1:]:
                offset = r.offset
                if previous and offset - previous > 1:
                    if self._moved_on(generation):
                        return False
                    await self._add_gap(tp, previous + 1, offset)
                previous = offset
            return not self._moved_on(generation)

        async def _deliver_others(self, tp: Any, recs: list[Any], generation: int) -> bool:
            """Another topic's records (the changelog), as Faust's loop handles each; False
            once the flow stopped or a rebalance began."""
            get_read_offset = self._read_offset.__getitem__
            set_read_offset = self._read_offset.__setitem__
            acks_enabled_for = self.app.topics.acks_enabled_for
            commit_every = self._commit_every
            callback = self.callback
            for record in recs:
                if self._moved_on(generation):
                    return False
                message = self._to_message(tp, record)
                offset = message.offset
                r_offset = get_read_offset(tp)
                if r_offset is not None and offset < r_offset:
                    continue  # already delivered (Faust drops these too)
                gap = offset - (r_offset or 0)
                if gap > 1 and r_offset and acks_enabled_for(message.topic):
                    await self._add_gap(tp, r_offset + 1, offset)
                if commit_every is not None and self._n_acked >= commit_every:
                    self._n_acked = 0
                    await self.commit()
                if restore is None or not restore(message):
                    await self.wait_first(callback(message), self.suspend_flow.wait())
                set_read_offset(tp, offset)
            return True

    return BatchingConsumer
