"""Hands a batch's records to the producer as whole record batches.

Sent one at a time through Faust, every record costs a ``FutureMessage``, a
trip through Faust's producer buffer, aiokafka's ``send`` (partitioner,
serialisers, accumulator) and a delivery future with its callbacks: 17% of a
busy worker's samples, for about 1.3 records per event (decisions, the audit
copy, one state write per changed customer). Here a batch's records are
gathered per topic and partition and appended to aiokafka ``BatchBuilder``
objects, one delivery future per record batch.

Keyed records go to ``murmur2(key) mod partitions``, what aiokafka's and
the Java client's default partitioner would choose; unkeyed ones go round
the partitions. Order is kept per topic and partition. A record batch is
also cut before it would outgrow its topic's limit (``max.message.bytes``,
learnt at start-up: :class:`~streams.live.limits.RecordLimits`), so a topic
whose limit is below the batch size still takes every batch; each record
alone fits, the runtime sees to that. Faust flushes the
producer before it commits offsets, so records submitted without waiting
(state writes) are on the broker before the offsets that cover them.

:class:`TransactionalSink` is the exactly-once variant
(``TACTFUL_PROCESSING_GUARANTEE=exactly_once``). Every record is added with
its *origin*, the input partition whose events caused it; :meth:`commit
<TransactionalSink.commit>` then runs one Kafka transaction per origin
partition, on that partition's transactional producer
(:mod:`streams.live.faust.transactions` says why one per input partition):
begin, the partition's record batches, its input offset with the stream-time
metadata (``send_offsets_to_transaction``), commit. A producer fenced by
another worker leaves its partition in :attr:`Committed.fenced` (the runtime
stops processing it); any other failure aborts the transaction and raises
:class:`~streams.errors.InfraError` once every partition's transaction has
ended, so that nothing of it is ever read by a ``read_committed`` consumer.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

from aiokafka.errors import KafkaError, ProducerFenced
from aiokafka.structs import OffsetAndMetadata, TopicPartition

from streams.errors import InfraError
from streams.live.limits import BATCH_OVERHEAD, RecordLimits, record_size
from streams.live.partitioning import Partitioner, murmur2
from streams.live.runtime import Committed, Headers, Offset

log = logging.getLogger(__name__)

Pending = list[tuple[bytes | None, bytes | None, Headers]]


class BatchSink:
    """Gathers records with :meth:`add`; :meth:`deliver` or :meth:`submit` sends them."""

    def __init__(self, producer: Callable[[], Any], limits: RecordLimits | None = None) -> None:
        # A callable: Faust starts its producer after the app (and this sink) is built.
        self._producer = producer
        self.limits = limits or RecordLimits()
        self._pending: dict[tuple[str, int | None], Pending] = {}
        self._partitioners: dict[str, Partitioner] = {}
        self._round_robin = itertools.count()
        self.warmed = False

    def add(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        *,
        partition: int | None = None,
        headers: Headers = (),
        origin: int | None = None,
    ) -> None:
        # origin (the input partition behind the record) matters only to TransactionalSink.
        self._pending.setdefault((topic, partition), []).append((key, value, headers))

    async def deliver(self) -> None:
        """Send what was added, and return once the broker has acknowledged all of it."""
        futures = await self.submit()
        if futures:
            await asyncio.gather(*futures)

    async def submit(self) -> list[Awaitable[object]]:
        """Send what was added; the returned futures resolve on delivery."""
        if not self._pending:
            return []
        pending, self._pending = self._pending, {}
        return await self._send_all(self._producer(), pending)

    async def _send_all(self, producer: Any, pending: dict[tuple[str, int | None], Pending]) -> list[Awaitable[object]]:
        routed: dict[tuple[str, int], Pending] = {}
        # A decision's key goes to its channel's topic and to the audit topic: hashed once.
        hashes: dict[bytes, int] = {}
        for (topic, partition), records in pending.items():
            if partition is not None:
                routed.setdefault((topic, partition), []).extend(records)
                continue
            owner = await self._partitioner(producer, topic)
            n = owner.partitions
            for record in records:
                key = record[0]
                if key is None:
                    p = next(self._round_robin) % n
                else:
                    h = hashes.get(key)
                    if h is None:
                        h = hashes[key] = murmur2(key) & 0x7FFFFFFF
                    p = h % n
                routed.setdefault((topic, p), []).append(record)
        futures: list[Awaitable[object]] = []
        for (topic, partition), records in routed.items():
            limit = self.limits.of(topic)
            batch = producer.create_batch()
            for key, value, headers in records:
                over = batch.size() + record_size(key, value, headers) - BATCH_OVERHEAD > limit
                if (over and batch.record_count()) or batch.append(
                    timestamp=None, key=key, value=value, headers=list(headers)
                ) is None:
                    # Full, or it would outgrow the topic's limit: this one goes first in the next
                    # batch (an empty batch takes any record).
                    futures.append(await self._send(producer, batch, topic, partition))
                    batch = producer.create_batch()
                    batch.append(timestamp=None, key=key, value=value, headers=list(headers))
            futures.append(await self._send(producer, batch, topic, partition))
        return futures

    @staticmethod
    async def _send(producer: Any, batch: Any, topic: str, partition: int) -> Awaitable[object]:
        # Closed, a batch is drained at once rather than after the producer's linger: it
        # is complete already. aiokafka also holds the next batch for a partition until
        # the previous one is drained, so lingering would serialise them.
        batch.close()
        fut: Awaitable[object] = await producer.send_batch(batch, topic, partition=partition)
        return fut

    async def warm(self, topics: Iterable[str]) -> None:
        """Fetch every topic's metadata before the first batch needs it.

        Measured at start-up, the first record batch to each topic waited for
        its metadata, up to 240 ms, and topics came one after another as their
        first decisions did. Together, concurrently, it is one wait.
        """
        producer = self._producer()
        try:
            await asyncio.gather(*(self._partitioner(producer, t) for t in set(topics)))
        except (KafkaError, OSError) as exc:  # the sends fetch what is missing themselves
            log.warning("could not fetch topic metadata ahead of the first batch: %r", exc)
        self.warmed = True

    async def _partitioner(self, producer: Any, topic: str) -> Partitioner:
        owner = self._partitioners.get(topic)
        if owner is None:
            partitions = await producer.partitions_for(topic)
            owner = self._partitioners[topic] = Partitioner(len(partitions))
        return owner


# The producer of an input partition's transactions, started (its id's earlier owners fenced).
PartitionProducer = Callable[[int], Awaitable[Any]]
# Called when a partition's producer is of no more use (fenced, or its transaction state unknown).
RetireProducer = Callable[[int], Awaitable[None]]
# Whether a failure of this producer means it was fenced (the adapter knows aiokafka's states).
IsFenced = Callable[[Any, BaseException], bool]


def _fenced(producer: Any, exc: BaseException) -> bool:
    return isinstance(exc, ProducerFenced)


class TransactionalSink(BatchSink):
    """Gathers records per origin partition; :meth:`commit` sends each partition's records and
    input offset in one transaction on that partition's producer."""

    def __init__(
        self,
        producers: PartitionProducer,
        retire: RetireProducer,
        group_id: str,
        input_topic: str,
        metadata_producer: Callable[[], Any],
        limits: RecordLimits | None = None,
        is_fenced: IsFenced = _fenced,
    ) -> None:
        # The metadata producer (Faust's own) answers partitions_for and warms the topics.
        super().__init__(metadata_producer, limits)
        self._producers = producers
        self._retire = retire
        self._is_fenced = is_fenced
        self.group_id = group_id
        self.input_topic = input_topic
        self._by_origin: dict[int, dict[tuple[str, int | None], Pending]] = {}

    def add(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        *,
        partition: int | None = None,
        headers: Headers = (),
        origin: int | None = None,
    ) -> None:
        if origin is None:
            # A record of no input partition would belong to no transaction: a bug, loudly.
            raise ValueError(f"a record for {topic} without its origin partition, in exactly-once mode")
        self._by_origin.setdefault(origin, {}).setdefault((topic, partition), []).append((key, value, headers))

    async def deliver(self) -> None:
        raise NotImplementedError("exactly-once: records are sent by commit()")

    async def submit(self) -> list[Awaitable[object]]:
        raise NotImplementedError("exactly-once: records are sent by commit()")

    async def commit(self, offsets: Mapping[int, Offset]) -> Committed:
        """One transaction per origin partition holding records or an offset, concurrently.

        Returns the partitions committed and those whose producer was fenced; raises
        :class:`InfraError` after every other transaction has ended if any failed (it
        was aborted, or its producer retired so that the next one's start aborts it).
        """
        pending, self._by_origin = self._by_origin, {}
        partitions = sorted(set(pending) | set(offsets))
        outcome = Committed()
        if not partitions:
            return outcome
        results = await asyncio.gather(
            *(self._one(p, pending.get(p, {}), offsets.get(p)) for p in partitions), return_exceptions=True
        )
        failed: list[tuple[int, BaseException]] = []
        for p, result in zip(partitions, results, strict=True):
            if result is None:
                outcome.committed.add(p)
            elif isinstance(result, ProducerFenced):
                outcome.fenced.add(p)
            else:
                failed.append((p, result))
        if failed:
            p, first = failed[0]
            if isinstance(first, asyncio.CancelledError):
                raise first
            raise InfraError(
                f"the transaction of input partition(s) {[q for q, _ in failed]} failed and was aborted: {first!r}"
            ) from first
        return outcome

    async def _one(self, partition: int, pending: dict[tuple[str, int | None], Pending], offset: Offset | None) -> None:
        producer = await self._producers(partition)
        try:
            await producer.begin_transaction()
        except BaseException as exc:
            if self._is_fenced(producer, exc):
                await self._retire(partition)
                raise ProducerFenced() from exc
            raise
        try:
            futures = await self._send_all(producer, pending) if pending else []
            # Every delivery's outcome is taken (a fenced producer fails them all); the first failure raised.
            for delivered in await asyncio.gather(*futures, return_exceptions=True):
                if isinstance(delivered, BaseException):
                    raise delivered
            if offset is not None:
                tp = TopicPartition(self.input_topic, partition)
                await producer.send_offsets_to_transaction(
                    {tp: OffsetAndMetadata(offset.offset, offset.metadata)}, self.group_id
                )
            await producer.commit_transaction()
        except BaseException as exc:
            # Fenced shows as ProducerFenced, or as any later call failing on a producer that a
            # background request found fenced ("Can't send messages while not in transaction").
            if self._is_fenced(producer, exc):
                await self._retire(partition)
                raise ProducerFenced() from exc
            await self._abort(partition, producer)
            raise

    async def _abort(self, partition: int, producer: Any) -> None:
        try:
            await asyncio.wait_for(producer.abort_transaction(), ABORT_TIMEOUT)
        except BaseException as exc:
            log.warning("aborting the transaction of input partition %d failed: %r", partition, exc)
            await self._retire(partition)


# Seconds an abort may take before the producer is given up (its successor's start aborts it).
ABORT_TIMEOUT = 30.0
