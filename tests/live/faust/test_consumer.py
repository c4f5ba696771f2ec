"""The batching consumer against Faust's own offset bookkeeping: no decision lost to a seek.

Faust commits what its consumer was told was acked (``ack``), plus the offset gaps its
drain loop recorded, from the committed offset on (``_filter_committable_offsets``). These
tests run the real Faust consumer class with the batching subclass, its real drain loop,
``ack`` and commit arithmetic; only the broker is faked: a partition log whose fetch
position moves as aiokafka's does (each fetch from the position on, a seek moves it,
``seek_to_committed`` asks the broker per partition).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from types import SimpleNamespace
from typing import Any

import faust
import pytest
from faust.types import TP
from faust.types.tuples import ConsumerMessage

from streams.live.faust.consumer import BatchHandler, batching_consumer

INPUT = "in"
OTHER = TP("app-state-changelog", 0)  # always active, as a changelog partition is: the fetcher never idles a second
FETCH = 20  # records a fetch returns per partition


class Partition:
    """One input partition on a fake broker: its records, committed offset and fetch position."""

    def __init__(self, tp: TP, end: int, committed: int) -> None:
        self.tp = tp
        self.end = end
        self.committed = committed
        self.position = committed  # aiokafka starts an assigned partition at its committed offset

    async def getmany(self, active_partitions: Any, timeout: float) -> dict[TP, list[Any]]:
        records: dict[TP, list[Any]] = {}
        if self.tp in (active_partitions or ()) and self.position < self.end:
            offsets = range(self.position, min(self.position + FETCH, self.end))
            records[self.tp] = [record(self.tp, o) for o in offsets]
            self.position = offsets[-1] + 1
        await asyncio.sleep(0 if records else 0.002)
        return records

    async def seek_to_committed(self) -> dict[TP, int]:
        await asyncio.sleep(0.01)  # the broker round trip for the committed offset
        self.position = self.committed
        return {self.tp: self.committed}


def record(tp: TP, offset: int) -> Any:
    return SimpleNamespace(
        topic=tp.topic,
        partition=tp.partition,
        offset=offset,
        timestamp=1_000,
        timestamp_type=0,
        headers=[],
        key=b"k",
        value=b"v",
        checksum=None,
        serialized_key_size=1,
        serialized_value_size=1,
    )


class Worker:
    """A Faust app whose consumer is the batching one, over ``partition``; ``process`` as the runtime."""

    def __init__(self, partition: Partition, max_batch: int = 5) -> None:
        self.partition = partition
        self.processed: list[int] = []
        self.commits: list[int] = []
        self.violations: list[str] = []
        self.batches = 0
        self.start = partition.committed  # the first offset to process
        self.app = faust.App("test-consumer-seek", broker="kafka://127.0.0.1:1", web_enabled=False)
        self.app.consumer_generation_id = 1
        handler = BatchHandler(self.app, self.process)
        self.app.transport.Consumer = batching_consumer(INPUT, handler, max_batch)  # type: ignore[misc]
        consumer: Any = self.app.consumer
        self.consumer = consumer
        tp = partition.tp
        self.app.topics.acks_enabled_for = lambda topic: True  # type: ignore[method-assign]
        consumer._getmany = partition.getmany
        consumer.seek_to_committed = partition.seek_to_committed
        consumer.highwater = lambda _tp: partition.end
        consumer.assignment = lambda: {tp, OTHER}
        consumer._set_active_tps({tp, OTHER})

    async def process(self, messages: list[Any]) -> None:
        """As the runtime: publish and persist (here: note the offsets), then ack; Faust commits."""
        await asyncio.sleep(0)  # the batch's writes take a while: other tasks run meanwhile
        self.processed += [m.offset for m in messages]
        for m in messages:
            self.consumer.ack(m)
        self.batches += 1
        if self.batches % 10 == 0:  # Faust commits on an interval, not after every batch
            self.commit()

    def commit(self) -> None:
        tp = self.partition.tp
        offset = self.consumer._filter_committable_offsets({tp}).get(tp)
        if offset is None:
            return
        missing = sorted(set(range(self.partition.committed, offset)) - set(self.processed))
        if missing:
            self.violations.append(f"commit {offset} past unprocessed offsets {missing[0]}..{missing[-1]}")
        self.consumer._committed_offset[tp] = offset
        self.partition.committed = offset
        self.commits.append(offset)

    async def run(self, scenario: Callable[[], Awaitable[None]]) -> None:
        fetcher = SimpleNamespace(_stopped=asyncio.Event())
        drain = asyncio.create_task(self.consumer._drain_messages(fetcher))
        try:
            await scenario()
            for _ in range(2000):  # until every record is processed (or the test fails below)
                if set(range(self.start, self.partition.end)) <= set(self.processed):
                    break
                await asyncio.sleep(0.002)
            await asyncio.sleep(0.05)  # anything read again would be by now
        finally:
            fetcher._stopped.set()
            drain.cancel()
            await asyncio.gather(drain, return_exceptions=True)
        self.commit()


def after_a_restart(committed: int, end: int) -> Worker:
    """A worker restarted over a backlog: assigned, recovered, its input still paused (Faust pauses it)."""
    worker = Worker(Partition(TP(INPUT, 0), end=end, committed=committed))
    worker.consumer.pause_partitions({worker.partition.tp})
    worker.app.flow_control.resume()  # Faust's recovery resumed the flow already (changelog reads)
    worker.consumer.resume_flow()
    return worker


def test_a_restarted_worker_reads_its_backlog_once_and_commits_nothing_unprocessed() -> None:
    """As Faust's ``on_recovery_completed``: the input partitions resumed, then sought to their
    committed offset. Before, the fetcher handed over the backlog from where it stood, the seek
    sent it back, and the fetch walked across the seek moved the read offset past it: records
    read twice, the gap committed as if acked."""
    worker = after_a_restart(committed=10, end=1000)

    async def recovery_completed() -> None:
        await asyncio.sleep(0.01)
        worker.consumer.resume_partitions({worker.partition.tp})
        await worker.consumer.perform_seek()

    asyncio.run(worker.run(recovery_completed))
    assert worker.violations == []
    assert sorted(worker.processed) == list(range(10, 1000))  # each once, none lost
    assert worker.commits[-1] == 1000


def test_a_failed_seek_still_releases_the_input_where_the_assignment_put_it() -> None:
    worker = after_a_restart(committed=10, end=60)

    async def seek_fails() -> dict[TP, int]:
        raise TimeoutError

    worker.consumer.seek_to_committed = seek_fails

    async def recovery_completed() -> None:
        worker.consumer.resume_partitions({worker.partition.tp})
        with pytest.raises(TimeoutError):  # Faust's recovery sees it, as before
            await worker.consumer.perform_seek()

    asyncio.run(worker.run(recovery_completed))
    assert worker.violations == []
    assert sorted(worker.processed) == list(range(10, 60))


def test_input_is_held_from_the_resume_until_the_seek_has_returned() -> None:
    worker = after_a_restart(committed=10, end=60)
    consumer, tp = worker.consumer, worker.partition.tp
    seen: list[bool] = []
    seek = worker.partition.seek_to_committed

    async def seek_to_committed() -> dict[TP, int]:
        seen.append(tp in consumer._active_partitions)
        return await seek()

    consumer.seek_to_committed = seek_to_committed

    async def main() -> tuple[bool, bool]:
        consumer.resume_partitions({tp, OTHER})
        held = tp not in consumer._active_partitions and OTHER in consumer._active_partitions
        await consumer.perform_seek()
        return held, tp in consumer._active_partitions

    assert asyncio.run(main()) == (True, True)
    assert seen == [False]
    assert consumer._read_offset[tp] == 10  # Faust's bookkeeping of the seek is untouched


def test_partitions_assigned_to_a_worker_with_a_running_fetcher_wait_for_the_seek() -> None:
    """Faust makes a new assignment active at once; a worker that held nothing before never
    stopped its flow, so input could be fetched before the table is recovered and sought."""
    worker = Worker(Partition(TP(INPUT, 0), end=60, committed=10))
    consumer, tp = worker.consumer, worker.partition.tp
    consumer._set_active_tps(set())

    async def on_assigned(assigned: Any, generation_id: int) -> None:
        return None

    consumer._on_partitions_assigned = on_assigned
    worker.app.on_rebalance_return = lambda: None  # type: ignore[method-assign]

    async def main() -> set[TP]:
        await consumer.on_partitions_assigned({tp, OTHER}, 2)
        return set(consumer._active_partitions)

    assert asyncio.run(main()) == {OTHER}


def test_input_of_a_stale_generation_is_not_acked_so_faust_commits_nothing_past_it() -> None:
    """Messages fetched before a rebalance and handed over after it: Faust's bookkeeping of the
    partition was cleared on revocation, so an ack of them landed in the new generation's, and
    once the records before them were processed Faust committed past them, unprocessed."""
    worker = Worker(Partition(TP(INPUT, 0), end=20, committed=10))
    consumer, tp = worker.consumer, worker.partition.tp
    worker.app.flow_control.resume()

    def message(offset: int, generation: int) -> ConsumerMessage:
        return ConsumerMessage(INPUT, 0, offset, 1.0, 0, [], b"k", b"v", None, tp=tp, generation_id=generation)

    handler = BatchHandler(worker.app, worker.process)

    async def main() -> None:
        worker.app.consumer_generation_id = 2  # the rebalance: Faust pops the partition's bookkeeping
        consumer._committed_offset.pop(tp, None)
        consumer._acked.pop(tp, None)
        await handler([message(o, 1) for o in range(13, 20)])  # fetched before it
        consumer._committed_offset[tp] = 10  # perform_seek, after recovery
        await handler([message(o, 2) for o in range(10, 13)])

    asyncio.run(main())
    worker.commit()
    assert worker.processed == [10, 11, 12]
    assert worker.violations == []
    assert worker.commits == [13]
