"""The runtime's :class:`~streams.live.runtime.Source` port over Faust's consumer and tables.

Each partition's stream time is committed with its offset, in the commit
metadata (:func:`streams.live.faust.consumer.batching_consumer` adds it to
Faust's commits); :meth:`FaustSource.load_stream_times` reads it back when
partitions are assigned, before their first record is processed, with the
offset it was committed with: the consumer seeks to the committed offset only
later, after recovery, and the runtime restores the stream time only for a
partition that resumes there (:meth:`Runtime._resumed
<streams.live.runtime.Runtime._resumed>`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import faust
from faust.types import TP

from streams.live.faust.consumer import ack_all
from streams.live.runtime import Incoming, decode_stream_time
from streams.settings import KafkaConnection

log = logging.getLogger(__name__)

# Reads the consumer group's committed offsets and their metadata for these input partitions (blocking).
CommittedReader = Callable[[list[int]], Mapping[int, tuple[int, str | None]]]


def committed_reader(kafka: KafkaConnection, group: str, topic: str, timeout_s: float = 10.0) -> CommittedReader:
    """Reads the metadata committed with ``group``'s offsets of ``topic``, with aiokafka's admin client.

    Not confluent-kafka's ``list_consumer_group_offsets``: it reads the metadata
    as a C string past its end, so it comes back with trailing bytes or raises
    ``UnicodeDecodeError`` (seen in ``make chaos``: ``'tactful/1
    stream_time=1795830142887\\xf4C\\x7f'``). Blocking: it runs its own loop, in the
    thread :meth:`FaustSource.load_stream_times` gives it.
    """
    from aiokafka.admin import AIOKafkaAdminClient
    from aiokafka.structs import TopicPartition

    from streams.live.faust.mirror_log import aiokafka_options

    async def read(partitions: list[int]) -> dict[int, tuple[int, str | None]]:
        admin = AIOKafkaAdminClient(
            **aiokafka_options(kafka), client_id=f"{group}-stream-times", request_timeout_ms=int(timeout_s * 1000)
        )
        await admin.start()
        try:
            listed = await admin.list_consumer_group_offsets(
                group, partitions=[TopicPartition(topic, p) for p in partitions]
            )
        finally:
            await admin.close()
        return {
            tp.partition: (found.offset, found.metadata or None) for tp, found in listed.items() if tp.topic == topic
        }

    def run(partitions: list[int]) -> Mapping[int, tuple[int, str | None]]:
        return asyncio.run(asyncio.wait_for(read(partitions), timeout_s))

    return run


class FaustSource:
    def __init__(
        self, app: faust.App, topic: str, partitions: int, read_committed: CommittedReader | None = None
    ) -> None:
        self.app = app
        self.topic = topic
        self._partitions = partitions
        self._read_committed = read_committed
        self._stream_times: dict[int, tuple[int, int]] = {}  # (offset, stream time committed with it)
        self._loads = 0  # loads under way; batches wait for none (stream_times_loaded)
        self._loaded: asyncio.Event | None = None

    @property
    def partitions(self) -> int:
        return self._partitions

    def ack(self, records: Sequence[Incoming]) -> None:
        # The records are the consumer's messages (streams.live.faust.consumer), acked as
        # Faust's Consumer.ack acks each, in one pass.
        ack_all(self.app.consumer, records)

    def recovering(self) -> bool:
        """The state table is still being restored from its changelog."""
        # Not in Faust's typed interface (TableManagerT has no `recovery`); pinned by a test.
        recovery: Any = self.app.tables.recovery  # type: ignore[attr-defined]
        return not recovery.completed.is_set()

    def rebalancing(self) -> bool:
        return bool(self.app.rebalancing)

    def recovered(self) -> bool:
        return not self.recovering() and not self.rebalancing()

    def highwater(self, partition: int) -> int | None:
        try:
            high = self.app.consumer.highwater(TP(self.topic, partition))
        except Exception:  # an unassigned or unfetched partition has no answer
            return None
        return None if high is None else int(high)

    def committed_stream_time(self, partition: int) -> int | None:
        found = self._stream_times.get(partition)
        return None if found is None else found[1]

    def committed_offset(self, partition: int) -> int | None:
        found = self._stream_times.get(partition)
        return None if found is None else found[0]

    async def load_stream_times(self, partitions: Iterable[int]) -> None:
        """Read the stream times committed with these partitions' offsets (on assignment)."""
        wanted = sorted(set(partitions))
        if not wanted or self._read_committed is None:
            return
        for p in wanted:
            self._stream_times.pop(p, None)  # another worker may have moved it on since
        self._loads += 1
        self._event().clear()
        try:
            found = await asyncio.to_thread(self._read_committed, wanted)
        except Exception as exc:
            # The worker runs on, as before stream time was committed: from the first record.
            log.warning("cannot read the committed stream time of partitions %s: %r", wanted, exc)
            return
        finally:
            self._loads -= 1
            if not self._loads:
                self._event().set()
        for p, (offset, metadata) in found.items():
            stream_time = decode_stream_time(metadata)
            if stream_time is not None:
                self._stream_times[p] = (offset, stream_time)

    async def stream_times_loaded(self) -> None:
        """Return once no load is under way. Faust's table recovery runs beside the
        assignment signal and may resume the input before the load is done: the batch
        handler waits here so that no partition starts without its stream time."""
        await self._event().wait()

    def _event(self) -> asyncio.Event:
        if self._loaded is None:
            self._loaded = asyncio.Event()
            self._loaded.set()
        return self._loaded
