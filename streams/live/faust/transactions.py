"""Exactly-once (``TACTFUL_PROCESSING_GUARANTEE=exactly_once``): transactional producers, and
where a restarted worker's changelog ends.

**One transaction per input partition and batch.** A batch's decisions, audit
copies, dead letters, re-routed records, forget records and changelog writes
of input partition *p*, and *p*'s next offset with its stream time in the
offset commit metadata, go in one Kafka transaction on *p*'s producer
(:class:`~streams.live.sink.TransactionalSink`). A ``read_committed`` reader
sees all of a batch's records of *p* or none, and the consumer group's offset
of *p* moves with them: a crash at any point either committed the batch
(reading it again is skipped by the offset) or aborted it (it is read again
from the committed offset, against the committed state).

**Transactional ids: one per input partition, ``{app_id}-{input topic}-{p}``.**
A new producer with an id aborts that id's open transaction and fences every
older producer with it (``InitProducerId`` bumps the epoch). Whoever owned *p*
before used *p*'s id, so the worker that takes *p* over fences exactly the
previous owner of *p*, whichever worker that was, killed or merely stalled,
before it reads *p*'s state. One id per worker instance would fence only an
earlier run of the same instance: a partition moved from a killed worker A to
a worker B would wait for A's open transaction to time out (a minute) with
every ``read_committed`` reader of the topics it wrote to stalled behind it,
and a stalled-but-alive A could still commit *p*'s offsets after B read
them. Kafka's newer scheme (KIP-447, EOS v2: one producer per worker, fenced
by the consumer group's generation) needs ``send_offsets_to_transaction`` to
carry the group metadata; aiokafka's takes only the group id. Faust's own
exactly-once mode and Kafka Streams' EOS v1 use per-partition ids as here.
Faust's mode itself is not used (Faust is always told ``at_least_once``): it
commits transactions on its commit timer rather than per batch, picks the
producer by the *output* record's partition, and reads its highwaters from
the last stable offset of the last fetch, which for a partition not fetched
yet is None, taken by recovery as an empty changelog (read from the code of
faust-streaming 0.15.3, not observed).

**Fencing comes before recovery.** :meth:`PartitionProducers.ensure` starts
(``init_transactions``) the producers of newly assigned active partitions
from inside the consumer's ``highwaters`` (:func:`committed_ends`), which
Faust's table recovery calls before it reads the changelog: a previous
owner's open transaction is aborted before the changelog's end is taken.

**Recovery reads committed data only, and knows where it ends.** The worker's
consumer reads ``read_committed`` in both modes (harmless without
transactions): aborted state writes are never restored. But a committed
transaction ends with a commit marker, an offset no record has, so the last
record of a changelog partition is not at its end offset less one, where
Faust's recovery waits for it (it would wait forever outside Faust's own
exactly-once mode, and 10 s within it). :func:`committed_ends` reads the
tail of each changelog partition with a throwaway ``read_committed``
consumer and tells recovery where the last committed record is.

**Fenced or failed.** A producer fenced by another worker means that worker
owns the partition: the runtime drops it and skips its records until the
group moves it away. A worker given it back without its leaving in between
(Faust recovers no partition a worker kept, and the state here lacks what
the other owner committed), or still holding it after :data:`FENCED_GRACE`,
exits (70) and recovers as a restart does: once, not in a loop. Any other
failure aborts the transaction and fails the batch: the worker exits (70)
and a restart reads the batch again from the committed offsets, against the
committed changelog, so the in-memory state that ran ahead is rolled back
with the rest.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer
from aiokafka.errors import InvalidProducerEpoch, ProducerFenced
from aiokafka.structs import TopicPartition

from streams.settings import KafkaConnection

log = logging.getLogger(__name__)

# Seconds a fenced partition may stay in this worker's assignment before it restarts.
FENCED_GRACE = 30.0
# Seconds a retired producer may take to stop (a fenced one may never finish flushing).
STOP_TIMEOUT = 10.0


def is_fenced(producer: Any, exc: BaseException) -> bool:
    """Whether ``exc`` from a transactional producer means another producer took its id.

    aiokafka raises :class:`ProducerFenced` only from the call that met the fence; a fence
    met by a background request (adding a partition to the transaction) leaves the
    transaction manager in its fatal state, and the next call fails otherwise
    (``IllegalOperation``, an assertion on the state). The manager keeps the fence as the
    exception of its transaction waiter. Private (``AIOKafkaProducer._txn_manager``), pinned.
    """
    if isinstance(exc, ProducerFenced | InvalidProducerEpoch):
        return True
    manager = getattr(producer, "_txn_manager", None)
    if manager is None or not manager.is_fatal_error():
        return False
    waiter = manager.wait_for_transaction_end()
    return bool(waiter.done() and not waiter.cancelled() and isinstance(waiter.exception(), ProducerFenced))


def transactional_id(app_id: str, input_topic: str, partition: int) -> str:
    return f"{app_id}-{input_topic}-{partition}"


class PartitionProducers:
    """One started transactional producer per input partition this worker processes.

    ``new_producer(transactional_id)`` builds an unstarted aiokafka producer
    with the worker's producer settings (Faust's ``Producer._new_producer``).
    """

    def __init__(self, new_producer: Callable[[str], Any], app_id: str, input_topic: str) -> None:
        self._new = new_producer
        self.app_id = app_id
        self.input_topic = input_topic
        self._started: dict[int, asyncio.Task[Any]] = {}
        self._stopping: set[asyncio.Future[None]] = set()

    def transactional_id(self, partition: int) -> str:
        return transactional_id(self.app_id, self.input_topic, partition)

    async def ensure(self, partitions: Iterable[int]) -> None:
        """Start the partitions' producers not started yet, concurrently: each start fences its id's
        earlier producers and aborts their open transaction."""
        tasks = [self._task(p) for p in sorted(set(partitions))]
        if tasks:
            await asyncio.gather(*tasks)

    async def get(self, partition: int) -> Any:
        return await self._task(partition)

    def _task(self, partition: int) -> asyncio.Task[Any]:
        task = self._started.get(partition)
        if task is None or (task.done() and (task.cancelled() or task.exception() is not None)):
            task = self._started[partition] = asyncio.ensure_future(self._start(partition))
        return task

    async def _start(self, partition: int) -> Any:
        producer = self._new(self.transactional_id(partition))
        started = time.monotonic()
        try:
            await producer.start()
        except BaseException:
            await _quietly(producer.stop())
            raise
        log.info(
            "input partition %d: transactional producer %s started in %.2fs",
            partition,
            self.transactional_id(partition),
            time.monotonic() - started,
        )
        return producer

    async def retire(self, partition: int) -> None:
        """Forget the partition's producer (fenced, revoked, or its state unknown) and stop it in the
        background: a fenced producer's ``stop`` waits for batches it can no longer deliver, and a
        batch waiting on it would hold up the rebalance that moves the partition away."""
        task = self._started.pop(partition, None)
        if task is None:
            return
        if not task.done():
            task.cancel()
            return
        if not task.cancelled() and task.exception() is None:
            stopping = asyncio.ensure_future(_quietly(asyncio.wait_for(task.result().stop(), STOP_TIMEOUT)))
            self._stopping.add(stopping)
            stopping.add_done_callback(self._stopping.discard)

    async def retain(self, partitions: Iterable[int]) -> None:
        """Stop the producers of partitions no longer assigned."""
        keep = set(partitions)
        for p in [p for p in self._started if p not in keep]:
            await self.retire(p)

    async def close(self) -> None:
        for p in list(self._started):
            await self.retire(p)
        if self._stopping:
            await asyncio.gather(*self._stopping)


async def _quietly(aw: Any) -> None:
    try:
        await aw
    except Exception as exc:
        log.debug("closing a transactional producer: %r", exc)


# (changelog partitions) -> {partition: end}: the offset after each one's last committed record.
EndsReader = Callable[[Sequence[int]], Any]


def committed_ends(kafka: KafkaConnection, topic: str, client_id: str, timeout_s: float = 30.0) -> EndsReader:
    """Where each partition of ``topic`` (a changelog) ends for a ``read_committed`` reader: the
    offset after its last committed record, or its start offset when it has none.

    A partition's end offset (the last stable offset) may lie past commit and abort markers
    and aborted records; the tail is read back from a window before it, growing until a
    committed record is found or the start is reached.
    """
    from streams.live.faust.mirror_log import aiokafka_options

    async def read(partitions: Sequence[int]) -> dict[int, int]:
        consumer = AIOKafkaConsumer(
            **aiokafka_options(kafka),
            client_id=client_id,
            group_id=None,
            enable_auto_commit=False,
            isolation_level="read_committed",
            request_timeout_ms=int(timeout_s * 1000),
        )
        await consumer.start()
        try:
            tps = [TopicPartition(topic, p) for p in partitions]
            consumer.assign(tps)
            begins = await consumer.beginning_offsets(tps)
            ends = await consumer.end_offsets(tps)
            found: dict[int, int] = {}
            window = 16
            todo = {tp for tp in tps if ends[tp] > begins[tp]}
            for tp in tps:
                if tp not in todo:
                    found[tp.partition] = begins[tp]
            while todo:
                starts = {tp: max(begins[tp], ends[tp] - window) for tp in todo}
                last = await _last_records(consumer, starts, {tp: ends[tp] for tp in todo})
                for tp in list(todo):
                    if tp in last:
                        found[tp.partition] = last[tp] + 1
                        todo.discard(tp)
                    elif starts[tp] == begins[tp]:
                        found[tp.partition] = begins[tp]  # nothing committed at all
                        todo.discard(tp)
                window *= 16
            return found
        finally:
            await consumer.stop()

    async def run(partitions: Sequence[int]) -> dict[int, int]:
        return await asyncio.wait_for(read(partitions), timeout_s)

    return run


async def _last_records(
    consumer: AIOKafkaConsumer, starts: Mapping[TopicPartition, int], ends: Mapping[TopicPartition, int]
) -> dict[TopicPartition, int]:
    """Read each partition from its start to its end; the offset of the last record seen in each."""
    last: dict[TopicPartition, int] = {}
    for tp, start in starts.items():
        consumer.seek(tp, start)
    pending = set(starts)
    while pending:
        got = await consumer.getmany(*pending, timeout_ms=200)
        for tp, records in got.items():
            for r in records:
                if r.offset < ends[tp]:
                    last[tp] = max(last.get(tp, -1), r.offset)
        # The position moves past markers and aborted records as they are read.
        for tp in list(pending):
            if await consumer.position(tp) >= ends[tp]:
                pending.discard(tp)
    return last
