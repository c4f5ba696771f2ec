"""A Faust consumer that hands the input topic to the runtime a fetch at a time.

Faust's consumer loop awaits ``wait_first(callback(message), suspend_flow)``
for every message, then the conductor builds an ``Event``, queues it, and a
stream takes it off again: measured, that is most of a worker's time. This
subclass keeps Faust's loop as it is for every other topic and keeps its
bookkeeping for the input topic too (read offsets, offset gaps, the commit
cadence), but collects the input topic's messages of one fetch and hands them
to :class:`BatchHandler` in one call. The state table's changelog records
of a recovery are offered to ``restore`` first
(:mod:`streams.live.faust.recovery`), which applies them in place; the rest
(the last records of a recovery, standbys) go through the conductor.

The handler tracks each message as unacked before the runtime sees it; the
runtime acks it (through :class:`~streams.live.faust.source.FaustSource`)
only after it has published and persisted the batch, so Faust still never
commits past an event whose effects have not landed. Messages of a stale
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
from collections.abc import Awaitable, Callable
from typing import Any, cast

from aiokafka.structs import OffsetAndMetadata
from faust.transport.consumer import CONSUMER_FETCHING
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread
from faust.transport.drivers.aiokafka import Consumer as AIOKafkaConsumer
from mode import Service

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


class BatchHandler:
    """Tracks and processes one fetch's worth of input messages; drops the stale ones unacked.

    ``process`` (the runtime's ``handle``) acks the messages it is given once
    their effects have landed.
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
        live = []
        stale = []
        for m in messages:
            if not active or m.generation_id != generation:
                stale.append(m)
                continue
            m.tracked = True
            unacked.add(m)
            live.append(m)
        if live and self.ready is not None:
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
            # Faust's loop (faust/transport/consumer.py), with the input topic batched.
            callback = self.callback
            getmany = self.getmany
            consumer_should_stop = cast(Service, self)._stopped.is_set
            fetcher_should_stop = cast(Service, fetcher)._stopped.is_set
            get_read_offset = self._read_offset.__getitem__
            set_read_offset = self._read_offset.__setitem__
            set_flag, unset_flag = self.diag.set_flag, self.diag.unset_flag
            commit_every = self._commit_every
            acks_enabled_for = self.app.topics.acks_enabled_for
            try:
                while not (consumer_should_stop() or fetcher_should_stop()):
                    set_flag(CONSUMER_FETCHING)
                    ait = getmany(timeout=1.0)
                    await self.sleep(0)
                    if self.should_stop:
                        continue
                    batch: list[Any] = []
                    async for tp, message in ait:
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
                        if message.topic == input_topic:
                            batch.append(message)
                            if len(batch) >= max_batch:
                                set_read_offset(tp, offset)
                                await handle(batch)
                                batch = []
                                continue
                        else:
                            if batch:  # keep order across topics
                                await handle(batch)
                                batch = []
                            if restore is None or not restore(message):
                                await self.wait_first(callback(message), self.suspend_flow.wait())
                        set_read_offset(tp, offset)
                    if batch:
                        await handle(batch)
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

    return BatchingConsumer
