"""The decision topics as the mirror consumer reads them: a plain aiokafka consumer, public API only.

:class:`KafkaDecisionLog` adapts aiokafka to
:class:`~streams.mirror.consumer.DecisionLog`. The consumer is a member of
its own group (``{app_id}-redis-mirror``, see :func:`mirror_group`), apart
from the worker's Faust group, so a rebalance of one never stops the other;
offsets are committed only when the mirror says so (no auto-commit), with
the Redis generation token as their metadata. The committed metadata is read
with the admin client (the consumer's ``committed()`` returns offsets only).
Every Kafka failure comes out as :class:`~streams.errors.InfraError`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError
from aiokafka.structs import OffsetAndMetadata

from streams.errors import InfraError
from streams.mirror.consumer import Partition, Rebalance
from streams.settings import KafkaConnection


def mirror_group(app_id: str) -> str:
    """The mirror's consumer group: the worker's, suffixed."""
    return f"{app_id}-redis-mirror"


def aiokafka_options(kafka: KafkaConnection) -> dict[str, Any]:
    """aiokafka client options for the connection (TLS, SASL), as Faust gets them."""
    options: dict[str, Any] = {"bootstrap_servers": kafka.servers, "security_protocol": kafka.security_protocol}
    context = kafka.ssl_context()
    if context is not None:
        options["ssl_context"] = context
    if kafka.security_protocol.startswith("SASL"):
        options["sasl_mechanism"] = kafka.sasl_mechanism or "SCRAM-SHA-512"
        options["sasl_plain_username"] = kafka.sasl_username or ""
        options["sasl_plain_password"] = kafka.sasl_password.get_secret_value() if kafka.sasl_password else ""
    return options


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, target: Rebalance) -> None:
        self.target = target

    async def on_partitions_revoked(self, revoked: Collection[TopicPartition]) -> None:
        await self.target.revoked([(tp.topic, tp.partition) for tp in revoked])

    async def on_partitions_assigned(self, assigned: Collection[TopicPartition]) -> None:
        await self.target.assigned([(tp.topic, tp.partition) for tp in assigned])


class KafkaDecisionLog:
    """The channels' decision topics, consumed in the group ``group_id``."""

    def __init__(self, kafka: KafkaConnection, group_id: str, topics: Sequence[str], *, client_id: str) -> None:
        self._options = aiokafka_options(kafka)
        self._group = group_id
        self._topics = list(topics)
        self._client_id = client_id
        self._consumer: AIOKafkaConsumer | None = None
        self._admin: AIOKafkaAdminClient | None = None

    async def start(self, listener: Rebalance) -> None:
        consumer = AIOKafkaConsumer(
            **self._options,
            group_id=self._group,
            client_id=self._client_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            # Only what the workers committed: with exactly-once, an aborted batch's decisions
            # must not reach Redis (without transactions, the same records as before).
            isolation_level="read_committed",
        )
        admin = AIOKafkaAdminClient(**self._options, client_id=f"{self._client_id}-admin")
        consumer.subscribe(self._topics, listener=_Listener(listener))
        try:
            await consumer.start()
            await admin.start()
        except (KafkaError, OSError) as exc:
            await _quietly(consumer.stop())
            await _quietly(admin.close())
            raise InfraError(f"the Redis mirror's Kafka consumer did not start: {exc!r}") from exc
        self._consumer, self._admin = consumer, admin

    async def stop(self) -> None:
        consumer, admin = self._consumer, self._admin
        self._consumer = self._admin = None
        if consumer is not None:
            await _quietly(consumer.stop())
        if admin is not None:
            await _quietly(admin.close())

    def _running(self) -> AIOKafkaConsumer:
        if self._consumer is None:
            raise InfraError("the Redis mirror's Kafka consumer is not started")
        return self._consumer

    async def fetch(self, timeout_s: float, max_records: int) -> Sequence[ConsumerRecord[Any, Any]]:
        try:
            found = await self._running().getmany(timeout_ms=round(timeout_s * 1000), max_records=max_records)
        except KafkaError as exc:
            raise InfraError(f"reading decision topics for the Redis mirror failed: {exc!r}") from exc
        return [record for records in found.values() for record in records]

    async def committed(self, partitions: Collection[Partition]) -> Mapping[Partition, tuple[int, str]]:
        if not partitions:
            return {}
        admin = self._admin
        if admin is None:
            raise InfraError("the Redis mirror's Kafka admin client is not started")
        asked = [TopicPartition(topic, number) for topic, number in partitions]
        try:
            listed = await admin.list_consumer_group_offsets(self._group, partitions=asked)
        except KafkaError as exc:
            raise InfraError(f"reading the Redis mirror's committed offsets failed: {exc!r}") from exc
        return {
            (tp.topic, tp.partition): (found.offset, found.metadata or "")
            for tp, found in listed.items()
            if found.offset >= 0
        }

    async def seek(self, positions: Mapping[Partition, int | None]) -> None:
        consumer = self._running()
        try:
            start = [TopicPartition(*part) for part, offset in positions.items() if offset is None]
            if start:
                await consumer.seek_to_beginning(*start)
            for (topic, number), offset in positions.items():
                if offset is not None:
                    consumer.seek(TopicPartition(topic, number), offset)
        except (KafkaError, IllegalStateError) as exc:
            raise InfraError(f"positioning the Redis mirror's consumer failed: {exc!r}") from exc

    async def commit(self, offsets: Mapping[Partition, tuple[int, str]]) -> bool:
        consumer = self._running()
        sent = {TopicPartition(*part): OffsetAndMetadata(offset, meta) for part, (offset, meta) in offsets.items()}
        try:
            await consumer.commit(sent)
        except (CommitFailedError, IllegalStateError):
            return False  # a rebalance took them: the next owner applies their records again
        except KafkaError as exc:
            raise InfraError(f"committing the Redis mirror's offsets failed: {exc!r}") from exc
        return True

    async def behind(self, partitions: Collection[Partition]) -> Mapping[Partition, int | None]:
        consumer = self._running()
        found: dict[Partition, int | None] = {}
        # A copy: the caller's set changes when a rebalance lands during the awaits below
        # (seen when a worker thawed from SIGSTOP: "Set changed size during iteration").
        for part in list(partitions):
            tp = TopicPartition(*part)
            # Revoked since the caller's set was made, or during an await below: aiokafka asserts.
            if tp not in consumer.assignment():
                found[part] = None
                continue
            high = consumer.highwater(tp)
            if high is None:
                found[part] = None
                continue
            try:
                # position() waits while an offset reset is under way; a status need not.
                position = await asyncio.wait_for(consumer.position(tp), 1.0)
            except (TimeoutError, KafkaError, IllegalStateError):
                found[part] = None
                continue
            found[part] = max(0, high - position)
        return found


async def _quietly(step: Any) -> None:
    with contextlib.suppress(KafkaError, OSError):
        await step
