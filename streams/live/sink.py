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
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from aiokafka.errors import KafkaError

from streams.live.limits import BATCH_OVERHEAD, RecordLimits, record_size
from streams.live.partitioning import Partitioner
from streams.live.runtime import Headers

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
        self, topic: str, key: bytes | None, value: bytes | None, *, partition: int | None = None, headers: Headers = ()
    ) -> None:
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
        producer = self._producer()
        routed: dict[tuple[str, int], Pending] = {}
        for (topic, partition), records in pending.items():
            if partition is not None:
                routed.setdefault((topic, partition), []).extend(records)
                continue
            owner = await self._partitioner(producer, topic)
            for record in records:
                key = record[0]
                p = owner.of_bytes(key) if key is not None else next(self._round_robin) % owner.partitions
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
