"""The batching consumer's per-batch bookkeeping against Faust's per-message one.

``ack_all`` must leave Faust's consumer exactly as ``Consumer.ack`` of each message
would (what Faust then commits is computed from it); the drain loop's gap test,
which walks a partition's offsets only when they are not contiguous, must record
the gaps Faust's loop recorded record by record, so that a partition with holes
(transaction markers, compaction) is still committed to its end and never past
an unprocessed record. The harness is ``test_consumer.py``'s: Faust's real
consumer class with the batching subclass, only the broker faked.
"""

from __future__ import annotations

import asyncio
import gc
import weakref
from typing import Any

import faust
import pytest
from faust.types import TP
from faust.types.tuples import ConsumerMessage

from streams.live.faust.consumer import BatchHandler, InputMessage, ack_all
from tests.live.faust.test_consumer import FETCH, INPUT, Partition, Worker, record

TP0, TP1 = TP(INPUT, 0), TP(INPUT, 1)
OFF = TP("quiet", 0)  # a topic whose acks Faust does not track


def consumer_state(consumer: Any) -> dict[str, Any]:
    return {
        "acked": {tp: list(v) for tp, v in consumer._acked.items() if v},
        "index": {tp: set(v) for tp, v in consumer._acked_index.items() if v},
        "n_acked": consumer._n_acked,
    }


def input_message(tp: TP, offset: int) -> InputMessage:
    return InputMessage(tp, 1, offset, b"k", b"v", [], 1.0)


def faust_message(tp: TP, offset: int) -> ConsumerMessage:
    return ConsumerMessage(tp.topic, tp.partition, offset, 1.0, 0, [], b"k", b"v", None, tp=tp, generation_id=1)


ACKS = {
    "in order": [(TP0, o) for o in range(5)],
    "two partitions interleaved": [(TP0, 0), (TP1, 7), (TP0, 1), (TP1, 8), (TP1, 9), (TP0, 2)],
    "the same offset twice": [(TP0, 3), (TP0, 3), (TP0, 4)],
    "below the committed offset": [(TP1, 2), (TP1, 3), (TP1, 4), (TP1, 5)],
    "a topic without acks": [(OFF, 0), (TP0, 0), (OFF, 1), (TP0, 1)],
    "out of order": [(TP0, 9), (TP0, 4), (TP1, 1), (TP0, 6)],
}


@pytest.mark.parametrize("kind", [input_message, faust_message], ids=["input", "faust"])
@pytest.mark.parametrize("acks", list(ACKS.values()), ids=list(ACKS))
def test_ack_all_leaves_faust_as_faust_acking_each_message_does(acks: list[tuple[TP, int]], kind: Any) -> None:
    async def run(batched: bool) -> tuple[dict[str, Any], list[bool], int, bool]:
        app = faust.App("test-ack-all", broker="kafka://127.0.0.1:1", web_enabled=False)
        app.topics.acks_enabled_for = lambda topic: topic == INPUT  # type: ignore[method-assign]
        consumer: Any = app.consumer
        consumer._committed_offset[TP1] = 4
        messages = [kind(tp, o) for tp, o in acks]
        for m in messages:
            if isinstance(m, ConsumerMessage):
                consumer._unacked_messages.add(m)  # as Faust's stream tracks its own
        waiting = consumer._waiting_for_ack = asyncio.get_running_loop().create_future()
        if batched:
            ack_all(consumer, messages)
        else:
            for m in messages:
                consumer.ack(m)
        return consumer_state(consumer), [m.acked for m in messages], len(consumer._unacked_messages), waiting.done()

    faust_way = asyncio.run(run(batched=False))
    assert asyncio.run(run(batched=True)) == faust_way
    assert faust_way[0]["n_acked"] > 0  # every case acks something


HOLES = {
    "none": set(),
    "a transaction marker after each ten": {o for o in range(10, 120) if o % 11 == 10},
    "a hole across fetches": set(range(18, 27)),
    "a hole at a batch cut": {5, 6},
    "holes right after the committed offset": {31, 32},
}


class HoledPartition(Partition):
    """A partition whose log has holes (markers, compaction): a fetch returns what is there."""

    def __init__(self, tp: TP, end: int, committed: int, holes: set[int]) -> None:
        super().__init__(tp, end, committed)
        self.holes = holes

    async def getmany(self, active_partitions: Any, timeout: float) -> dict[TP, list[Any]]:
        records: dict[TP, list[Any]] = {}
        if self.tp in (active_partitions or ()) and self.position < self.end:
            offsets = range(self.position, min(self.position + FETCH, self.end))
            present = [record(self.tp, o) for o in offsets if o not in self.holes]
            if present:
                records[self.tp] = present
            self.position = offsets[-1] + 1
        await asyncio.sleep(0 if records else 0.002)
        return records


@pytest.mark.parametrize("holes", list(HOLES.values()), ids=list(HOLES))
def test_a_partition_with_holes_is_processed_once_with_each_hole_recorded_as_faust_s_loop_did(
    holes: set[int],
) -> None:
    committed = 30 if 31 in holes else 1  # Faust records no gap after a read offset of 0
    partition = HoledPartition(TP(INPUT, 0), end=120, committed=committed, holes=holes)
    worker = Worker(partition)
    worker.app.flow_control.resume()
    worker.consumer.resume_flow()
    # As if the record before the committed one had been read: Faust counts gaps from there.
    worker.consumer._read_offset[partition.tp] = committed - 1
    recorded: list[tuple[int, int]] = []
    add_gap = worker.consumer._add_gap

    async def noted(tp: TP, offset_from: int, offset_to: int) -> None:
        recorded.append((offset_from, offset_to))
        await add_gap(tp, offset_from, offset_to)

    worker.consumer._add_gap = noted
    present = [o for o in range(committed, partition.end) if o not in holes]

    async def scenario() -> None:
        for _ in range(2000):
            if set(present) <= set(worker.processed):
                return
            await asyncio.sleep(0.002)

    worker.start = partition.end  # Worker.run waits for the whole range: the holes never come
    asyncio.run(worker.run(scenario))
    assert worker.processed == present
    # Faust's loop, record by record: a record more than one past the last read adds the gap
    # from after that one up to it (its own offset included: Faust's arithmetic, kept as it is).
    previous = [committed - 1, *present[:-1]]
    assert recorded == [(q + 1, o) for q, o in zip(previous, present, strict=True) if q and o - q > 1]
    assert (not holes) == (not recorded)
    # Worker.commit counts the holes as unprocessed: they are the only ones a commit may pass.
    for violation in worker.violations:
        first, last = (int(x) for x in violation.rpartition(" ")[2].split(".."))
        assert set(range(first, last + 1)) - set(present) >= {first, last} and {first, last} <= holes, violation
    assert worker.commits


def test_a_batch_is_in_faust_s_unacked_set_while_it_is_processed_and_only_then() -> None:
    """Faust's rebalance and shutdown wait (wait_empty) until its unacked set holds nothing
    unacked: one marker stands there for the whole batch instead of each message."""
    seen: list[list[bool]] = []

    async def main() -> None:
        app = faust.App("test-in-flight", broker="kafka://127.0.0.1:1", web_enabled=False)
        app.consumer_generation_id = 1
        app.flow_control.resume()
        consumer: Any = app.consumer

        async def process(messages: list[Any]) -> None:
            seen.append([m.acked for m in consumer._unacked_messages])
            ack_all(consumer, messages)

        await BatchHandler(app, process)([input_message(TP0, o) for o in range(3)])
        gc.collect()
        seen.append([m.acked for m in consumer._unacked_messages])
        consumer._clean_unacked_messages()
        assert not consumer._unacked_messages

    asyncio.run(main())
    assert seen[0] == [False]  # in flight: Faust waits
    assert all(seen[1])  # done (or gone): Faust does not


def test_input_messages_are_weakly_referenced_as_faust_s_sets_need() -> None:
    m = input_message(TP0, 3)
    assert weakref.ref(m)() is m
    assert (m.topic, m.partition, m.offset, m.timestamp) == (INPUT, 0, 3, 1.0)
