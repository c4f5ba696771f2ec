"""BatchSink against aiokafka's own BatchBuilder: the bytes it builds are read back."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiokafka.errors import KafkaTimeoutError
from aiokafka.producer.message_accumulator import BatchBuilder
from aiokafka.record.default_records import DefaultRecordBatch

from streams.live.limits import RecordLimits, record_size
from streams.live.partitioning import Partitioner
from streams.live.sink import BatchSink
from tests.support import until

Sent = tuple[str, int, list[tuple[bytes | None, bytes | None, list[tuple[str, bytes]]]]]


class Producer:
    """The three aiokafka producer calls the sink makes; delivery is resolved by the test."""

    def __init__(self, partitions: dict[str, int], batch_size: int = 16384) -> None:
        self.partitions = partitions
        self.batch_size = batch_size
        self.sent: list[Sent] = []
        self.futures: list[asyncio.Future[object]] = []
        self.closed_when_sent: list[bool] = []
        self.asked: list[str] = []
        self.metadata_delay = 0.0  # one metadata round trip

    def create_batch(self) -> BatchBuilder:
        return BatchBuilder(self.batch_size, 0, is_transactional=False, key_serializer=None, value_serializer=None)

    async def send_batch(self, batch: BatchBuilder, topic: str, *, partition: int) -> asyncio.Future[object]:
        self.closed_when_sent.append(batch.closed())
        records = [(r.key, r.value, list(r.headers)) for r in DefaultRecordBatch(bytes(batch._build()))]
        self.sent.append((topic, partition, records))
        fut: asyncio.Future[object] = asyncio.get_running_loop().create_future()
        self.futures.append(fut)
        return fut

    async def partitions_for(self, topic: str) -> set[int]:
        self.asked.append(topic)
        await asyncio.sleep(self.metadata_delay)
        if topic not in self.partitions:
            raise KafkaTimeoutError()
        return set(range(self.partitions[topic]))


def by_partition(sent: list[Sent]) -> dict[tuple[str, int], list[Any]]:
    out: dict[tuple[str, int], list[Any]] = {}
    for topic, partition, records in sent:
        out.setdefault((topic, partition), []).extend(records)
    return out


def test_keyed_records_go_where_the_default_partitioner_would_put_them_in_order() -> None:
    producer = Producer({"decisions.sms": 3})
    sink = BatchSink(lambda: producer)
    keys = [f"c{i}".encode() for i in range(40)]

    async def go() -> None:
        for i, key in enumerate(keys):
            sink.add("decisions.sms", key, f"v{i}".encode())
        sink.add("state-changelog", b"c1", b"state", partition=2, headers=(("h", b"x"),))
        futures = await sink.submit()
        for f in futures:
            f.set_result(None)

    asyncio.run(go())
    got = by_partition(producer.sent)
    owner = Partitioner(3)
    for p in range(3):
        want = [(k, f"v{i}".encode(), []) for i, k in enumerate(keys) if owner.of_bytes(k) == p]
        assert got[("decisions.sms", p)] == want
    assert got[("state-changelog", 2)] == [(b"c1", b"state", [("h", b"x")])]
    # murmur2 of the key, as the Java client computes it (vectors in test_partitioning).
    assert owner.of_bytes(b"c1") == owner("c1")


def test_a_full_batch_continues_in_the_next_and_nothing_is_lost() -> None:
    producer = Producer({}, batch_size=256)
    sink = BatchSink(lambda: producer)
    values = [bytes([i]) * 50 for i in range(30)]

    async def go() -> None:
        for v in values:
            sink.add("t", b"k", v, partition=0)
        for f in await sink.submit():
            f.set_result(None)

    asyncio.run(go())
    assert len(producer.sent) > 5  # split, ...
    # Closed when submitted, so aiokafka sends each at once instead of lingering on it.
    assert producer.closed_when_sent == [True] * len(producer.sent)
    assert [v for _, v, _ in by_partition(producer.sent)[("t", 0)]] == values  # ... whole and in order


def test_a_record_with_neither_key_nor_value_is_kept_as_it_came() -> None:
    producer = Producer({"dlq": 2})
    sink = BatchSink(lambda: producer)

    async def go() -> None:
        sink.add("dlq", None, None, headers=(("tactful.reason", b"malformed"),))
        for f in await sink.submit():
            f.set_result(None)

    asyncio.run(go())
    [(topic, _, records)] = producer.sent
    assert (topic, records) == ("dlq", [(None, None, [("tactful.reason", b"malformed")])])


def test_unkeyed_records_go_round_the_partitions() -> None:
    producer = Producer({"dlq": 3})
    sink = BatchSink(lambda: producer)

    async def go() -> None:
        for i in range(6):
            sink.add("dlq", None, str(i).encode())
        for f in await sink.submit():
            f.set_result(None)

    asyncio.run(go())
    assert {p: [v for _, v, _ in r] for (_, p), r in by_partition(producer.sent).items()} == {
        0: [b"0", b"3"],
        1: [b"1", b"4"],
        2: [b"2", b"5"],
    }


def test_deliver_returns_only_once_every_batch_is_acknowledged() -> None:
    producer = Producer({"a": 2})
    sink = BatchSink(lambda: producer)

    async def go() -> list[str]:
        events: list[str] = []
        for i in range(10):
            sink.add("a", f"k{i}".encode(), b"v")
        task = asyncio.create_task(sink.deliver())
        await until(lambda: len(producer.futures) == 2, what="both batches sent")
        assert not task.done()
        producer.futures[0].set_result(None)
        # A "waiting" can only be seen by letting the loop run whatever that ack set off:
        # zero-time turns, enough for any chain of callbacks to finish, and no clock.
        for _ in range(20):
            await asyncio.sleep(0)
        events.append("one acked: " + ("done" if task.done() else "waiting"))
        producer.futures[1].set_result(None)
        await task
        events.append("all acked: done")
        return events

    assert asyncio.run(go()) == ["one acked: waiting", "all acked: done"]


def test_a_failed_delivery_fails_deliver() -> None:
    producer = Producer({"a": 1})
    sink = BatchSink(lambda: producer)

    async def go() -> None:
        sink.add("a", b"k", b"v")
        task = asyncio.create_task(sink.deliver())
        await until(lambda: producer.futures, what="the batch sent")
        producer.futures[0].set_exception(RuntimeError("broker said no"))
        await task

    with pytest.raises(RuntimeError, match="broker said no"):
        asyncio.run(go())


def test_what_was_submitted_is_not_sent_again() -> None:
    producer = Producer({"a": 1})
    sink = BatchSink(lambda: producer)

    async def go() -> tuple[int, int]:
        sink.add("a", b"k", b"v")
        first = await sink.submit()
        second = await sink.submit()
        for f in first:
            f.set_result(None)
        return len(first), len(second)

    assert asyncio.run(go()) == (1, 0)
    assert len(producer.sent) == 1


def test_warm_fetches_every_topics_metadata_at_once_before_the_first_batch() -> None:
    producer = Producer({"decisions.sms": 3, "decisions.email": 2, "audit": 4})
    producer.metadata_delay = 0.05
    sink = BatchSink(lambda: producer)

    async def go() -> float:
        loop = asyncio.get_running_loop()
        started = loop.time()
        await sink.warm(["decisions.sms", "decisions.email", "audit", "audit"])
        took = loop.time() - started
        sink.add("decisions.sms", b"c1", b"v")
        for f in await sink.submit():
            f.set_result(None)
        return took

    took = asyncio.run(go())
    assert sink.warmed
    assert sorted(producer.asked) == ["audit", "decisions.email", "decisions.sms"]  # once each, none after
    assert took < 0.1  # together: one round trip, not three


def test_a_failed_warm_up_still_lets_the_worker_become_ready() -> None:
    producer = Producer({"audit": 1})
    sink = BatchSink(lambda: producer)
    asyncio.run(sink.warm(["audit", "missing"]))
    assert sink.warmed


def test_batches_are_cut_at_the_topics_limit_below_the_batch_size() -> None:
    # A DLQ topic that takes 100 kB per batch, a producer batch size of 256 KiB: every
    # batch sent to it must stay within the 100 kB, or the broker refuses it.
    producer = Producer({}, batch_size=256 * 1024)
    limit = 100_000
    sink = BatchSink(lambda: producer, RecordLimits({"dlq": limit}))
    values = [bytes([i]) * 30_000 for i in range(10)]

    async def go() -> None:
        for v in values:
            sink.add("dlq", b"k", v, partition=0)
        sink.add("other", b"k", b"x" * 150_000, partition=0)
        sink.add("other", b"k", b"y" * 50_000, partition=0)
        for f in await sink.submit():
            f.set_result(None)

    asyncio.run(go())
    dlq = [records for topic, _, records in producer.sent if topic == "dlq"]
    assert [v for records in dlq for _, v, _ in records] == values  # all of them, in order
    assert len(dlq) == 4  # three records a batch
    for records in dlq:
        assert record_size(None, None, []) + sum(record_size(k, v, h) - 61 for k, v, h in records) <= limit
    # A topic not limited below the batch size keeps its batches whole.
    assert [len(r) for t, _, r in producer.sent if t == "other"] == [2]
