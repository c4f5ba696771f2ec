"""Exactly-once sequencing, with fakes: the runtime's transactions per input partition, the
transactional sink against fake aiokafka producers, the producers per partition, and the
consumer hooks (Faust commits no input offset; recovery learns where the changelog ends)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any, ClassVar

import pytest
from aiokafka.errors import KafkaTimeoutError, ProducerFenced
from aiokafka.producer.message_accumulator import BatchBuilder
from aiokafka.record.default_records import DefaultRecordBatch
from aiokafka.structs import OffsetAndMetadata, TopicPartition

from streams.codec import avro
from streams.errors import InfraError
from streams.live import metrics as live_metrics
from streams.live.codecs import Codecs
from streams.live.faust.consumer import without_topic
from streams.live.faust.transactions import PartitionProducers, transactional_id
from streams.live.runtime import (
    Committed,
    Headers,
    Offset,
    Runtime,
    RuntimeIO,
    StateTable,
    decode_stream_time,
)
from streams.live.sink import TransactionalSink
from streams.settings import Settings
from streams.topology import load_folder
from tests.live.test_runtime import NOW, TOPOLOGIES, Log, Source, event, on_partition, records
from tests.support import until


class TxSink:
    """The runtime's TransactionSink port: what was added per origin, and each commit's offsets."""

    def __init__(self, log: Log) -> None:
        self.log = log
        self.pending: dict[int, list[tuple[str, bytes | None, int | None]]] = {}
        self.fence: set[int] = set()
        self.fail: BaseException | None = None

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
        assert origin is not None
        self.pending.setdefault(origin, []).append((topic, key, partition))

    async def deliver(self) -> None:
        raise AssertionError("exactly-once sends nothing outside a transaction")

    async def submit(self) -> list[Any]:
        raise AssertionError("exactly-once sends nothing outside a transaction")

    async def commit(self, offsets: Mapping[int, Offset]) -> Committed:
        pending, self.pending = self.pending, {}
        if self.fail is not None:
            raise self.fail
        done = Committed()
        for p in sorted(set(pending) | set(offsets)):
            if p in self.fence:
                done.fenced.add(p)
                continue
            self.log.effects.append(("commit", (p, [t for t, _, _ in pending.get(p, [])], offsets.get(p))))
            done.committed.add(p)
        return done


def make(log: Log, clock: list[float]) -> tuple[Runtime, Source, TxSink]:
    source = Source(log)
    sink = TxSink(log)
    io = RuntimeIO(
        source=source,
        sink=sink,
        # The changelog writer adds to the sink, as streams/live/faust/table.py's does.
        state=StateTable({}, lambda p, k, v: sink.add("changelog", k.encode(), v, partition=p, origin=p)),
        codecs=Codecs(lambda b: avro.decode(b, avro.local_registry().resolve), lambda d: d.decision_id.encode(), 0),
        metrics=live_metrics.create(),
    )
    settings = Settings.from_flat({"redis_url": "", "processing_guarantee": "exactly_once"})
    return Runtime(settings, load_folder(TOPOLOGIES), io, clock=lambda: clock[0]), source, sink


def sequence(cust: str, start: int = 0) -> list[Any]:
    return records(
        (cust, event(f"p{cust}", cust, "purchase", NOW, category="phone")),
        (cust, event(f"f{cust}", cust, "activation_failed", NOW + 1000)),
        (cust, event(f"s{cust}", cust, "support_contact", NOW + 2000, resolved="false")),
        start=start,
    )


def customer_on_another_partition(than: str) -> str:
    return next(c for c in (f"d{i}" for i in range(100)) if on_partition(c) != on_partition(than))


@pytest.mark.parametrize("guarantee", ["at_least_once", "exactly_once"])
def test_settings_take_either_guarantee(guarantee: str) -> None:
    assert Settings.from_env({"TACTFUL_PROCESSING_GUARANTEE": guarantee}).processing.guarantee == guarantee


def test_the_default_guarantee_is_exactly_once() -> None:
    assert Settings.from_env({}).processing.guarantee == "exactly_once"


def test_each_partitions_records_and_offset_go_in_one_transaction_before_the_ack() -> None:
    log, clock = Log(), [NOW / 1000]
    rt, _, _ = make(log, clock)
    other = customer_on_another_partition("c1")
    batch = sequence("c1") + sequence(other, start=10)
    outcome = asyncio.run(rt.handle(batch))
    assert len(outcome.decisions) == 8
    commits = [e[1] for e in log.effects if e[0] == "commit"]
    # One transaction per input partition: its decisions, audit copies and the state write,
    # with the offset after its last record and its stream time.
    assert sorted(p for p, _, _ in commits) == sorted({on_partition("c1"), on_partition(other)})
    for p, topics, offset in commits:
        # The partition's four decisions (an engage, three suppressions), each on its channel
        # and the audit topic, and the one changed customer's state.
        assert topics.count("decisions.audit") == 4 and "decisions.call_center" in topics
        assert topics.count("changelog") == 1
        assert len(topics) == 4 + 4 + 1
        assert offset is not None
        assert offset.offset == (3 if p == on_partition("c1") else 13)
        assert decode_stream_time(offset.metadata) == NOW + 2000
    # The ack comes after both transactions, and covers every record.
    assert [k for k, _ in log.effects] == ["commit", "commit", "ack"]
    assert log.effects[-1][1] == [0, 1, 2, 10, 11, 12]


def test_a_fenced_partition_is_dropped_and_its_later_records_are_skipped_but_acked() -> None:
    log, clock = Log(), [NOW / 1000]
    rt, _, sink = make(log, clock)
    rt.assign(range(4))
    p = on_partition("c1")
    sink.fence = {p}
    asyncio.run(rt.handle(sequence("c1")))
    assert p in rt.fenced and p not in rt.runs
    log.effects.clear()
    sink.fence = set()
    outcome = asyncio.run(rt.handle(sequence("c1", start=3)))
    assert outcome.decisions == [] and log.effects == [("ack", [3, 4, 5])]
    # Still assigned here, it stays fenced (its state here may be ahead of the committed one)...
    rt.assign(range(4))
    assert p in rt.fenced
    # ...until the group moves it away.
    rt.assign([q for q in range(4) if q != p])
    assert rt.fenced == {}


def test_a_failed_transaction_fails_the_batch_and_acks_nothing() -> None:
    log, clock = Log(), [NOW / 1000]
    rt, _, sink = make(log, clock)
    sink.fail = InfraError("aborted")
    with pytest.raises(InfraError):
        asyncio.run(rt.handle(sequence("c1")))
    assert [k for k, _ in log.effects] == []


def test_time_passing_commits_its_decisions_with_the_partitions_offset() -> None:
    """The idle policy's deadlines fire in a transaction too, with the partition's offset and the
    stream time it moved to."""
    log, clock = Log(), [NOW / 1000]
    rt, source, _ = make(log, clock)
    rt.assign(range(4))
    cust = "c7"
    p = on_partition(cust)
    asyncio.run(rt.handle(records((cust, event("buy", cust, "purchase", NOW, category="tablet")))))
    log.effects.clear()
    source.high = {q: 1 for q in range(4)}
    clock[0] = NOW / 1000 + 2 * 86_400
    fired = asyncio.run(rt.tick())
    assert [d.topology for d in fired] == ["activation_nudge"]
    commits = [e[1] for e in log.effects if e[0] == "commit"]
    assert [(q, sorted(set(t))) for q, t, _ in commits] == [
        (p, ["changelog", "decisions.audit", "decisions.sms"]),
    ]
    offset = commits[0][2]
    assert offset is not None and offset.offset == 1
    assert (decode_stream_time(offset.metadata) or 0) > NOW


# -- the transactional sink, against fake aiokafka producers --------------------------------------


class TxProducer:
    """The aiokafka producer calls the transactional sink makes, logged in order."""

    def __init__(self, name: int, log: list[tuple[int, str, Any]], partitions: int = 2) -> None:
        self.name = name
        self.log = log
        self.partitions = partitions
        self.fail_commit: BaseException | None = None
        self.fail_send: BaseException | None = None
        self.stopped = False

    def create_batch(self) -> BatchBuilder:
        return BatchBuilder(16384, 0, is_transactional=True, key_serializer=None, value_serializer=None)

    async def partitions_for(self, topic: str) -> set[int]:
        return set(range(self.partitions))

    async def begin_transaction(self) -> None:
        self.log.append((self.name, "begin", None))

    async def send_batch(self, batch: BatchBuilder, topic: str, *, partition: int) -> asyncio.Future[object]:
        values = [r.value for r in DefaultRecordBatch(bytes(batch._build()))]
        self.log.append((self.name, "send", (topic, partition, values)))
        fut: asyncio.Future[object] = asyncio.get_running_loop().create_future()
        if self.fail_send is not None:
            fut.set_exception(self.fail_send)
        else:
            fut.set_result(None)
        return fut

    async def send_offsets_to_transaction(self, offsets: dict[TopicPartition, Any], group_id: str) -> None:
        self.log.append((self.name, "offsets", (offsets, group_id)))

    async def commit_transaction(self) -> None:
        if self.fail_commit is not None:
            raise self.fail_commit
        self.log.append((self.name, "commit", None))

    async def abort_transaction(self) -> None:
        self.log.append((self.name, "abort", None))

    async def stop(self) -> None:
        self.stopped = True


def tx_sink(producers: dict[int, TxProducer], retired: list[int]) -> TransactionalSink:
    async def get(p: int) -> TxProducer:
        return producers[p]

    async def retire(p: int) -> None:
        retired.append(p)

    return TransactionalSink(get, retire, "group", "input", lambda: producers[0])


def test_the_sink_sends_each_origins_records_and_offset_in_one_transaction_on_its_producer() -> None:
    calls: list[tuple[int, str, Any]] = []
    producers = {p: TxProducer(p, calls) for p in range(2)}
    sink = tx_sink(producers, [])

    async def go() -> Committed:
        sink.add("decisions.sms", b"a", b"d0", origin=0)
        sink.add("changelog", b'"a"', b"s0", partition=0, origin=0)
        sink.add("decisions.sms", b"b", b"d1", origin=1)
        return await sink.commit({0: Offset(5, "tactful/1 stream_time=7"), 1: Offset(9)})

    done = asyncio.run(go())
    assert done.committed == {0, 1} and done.fenced == set()
    for p in (0, 1):
        mine = [(kind, arg) for name, kind, arg in calls if name == p]
        assert [k for k, _ in mine] == ["begin", *(["send"] * (2 if p == 0 else 1)), "offsets", "commit"]
        offsets, group = mine[-2][1]
        want = OffsetAndMetadata(5, "tactful/1 stream_time=7") if p == 0 else OffsetAndMetadata(9, "")
        assert (offsets, group) == ({TopicPartition("input", p): want}, "group")
    sent = [arg for name, kind, arg in calls if kind == "send"]
    assert ("changelog", 0, [b"s0"]) in sent


def test_the_sink_reports_a_fenced_partition_and_commits_the_others() -> None:
    calls: list[tuple[int, str, Any]] = []
    producers = {p: TxProducer(p, calls) for p in range(2)}
    producers[1].fail_commit = ProducerFenced()
    retired: list[int] = []
    sink = tx_sink(producers, retired)
    sink.add("decisions.sms", b"a", b"x", origin=0)
    sink.add("decisions.sms", b"b", b"y", origin=1)
    done = asyncio.run(sink.commit({0: Offset(1), 1: Offset(1)}))
    assert (done.committed, done.fenced, retired) == ({0}, {1}, [1])
    assert (1, "abort", None) not in calls  # a fenced producer can do nothing more


def test_a_fence_met_in_the_background_counts_as_fenced_not_as_a_failure() -> None:
    """aiokafka can meet the fence in a background request; the next call then fails otherwise."""
    from aiokafka.errors import IllegalOperation

    calls: list[tuple[int, str, Any]] = []
    producers = {p: TxProducer(p, calls) for p in range(2)}
    producers[1].fail_send = IllegalOperation("Can't send messages while not in transaction")
    retired: list[int] = []

    async def get(p: int) -> TxProducer:
        return producers[p]

    async def retire(p: int) -> None:
        retired.append(p)

    sink = TransactionalSink(
        get, retire, "group", "input", lambda: producers[0], is_fenced=lambda producer, exc: producer.name == 1
    )
    sink.add("decisions.sms", b"a", b"x", origin=0)
    sink.add("decisions.sms", b"b", b"y", origin=1)
    done = asyncio.run(sink.commit({0: Offset(1), 1: Offset(1)}))
    assert (done.committed, done.fenced, retired) == ({0}, {1}, [1])
    assert (1, "abort", None) not in calls


def test_a_failed_send_aborts_its_transaction_and_raises_once_all_have_ended() -> None:
    calls: list[tuple[int, str, Any]] = []
    producers = {p: TxProducer(p, calls) for p in range(2)}
    producers[0].fail_send = KafkaTimeoutError()
    sink = tx_sink(producers, [])
    sink.add("decisions.sms", b"a", b"x", origin=0)
    sink.add("decisions.sms", b"b", b"y", origin=1)
    with pytest.raises(InfraError, match=r"\[0\]"):
        asyncio.run(sink.commit({0: Offset(1), 1: Offset(1)}))
    assert [k for n, k, _ in calls if n == 0] == ["begin", "send", "abort"]
    assert [k for n, k, _ in calls if n == 1][-1] == "commit"


def test_the_sink_refuses_a_record_without_its_origin() -> None:
    sink = tx_sink({}, [])
    with pytest.raises(ValueError, match="origin"):
        sink.add("decisions.sms", b"a", b"x")


# -- producers per input partition ------------------------------------------------------------------


class Startable:
    def __init__(self, tid: str, started: list[str]) -> None:
        self.tid = tid
        self.started = started
        self.stopped = False

    async def start(self) -> None:
        await asyncio.sleep(0)
        self.started.append(self.tid)

    async def stop(self) -> None:
        self.stopped = True


def test_each_input_partition_has_its_own_transactional_id_started_once() -> None:
    started: list[str] = []
    built: dict[str, Startable] = {}

    def new(tid: str) -> Startable:
        built[tid] = Startable(tid, started)
        return built[tid]

    producers = PartitionProducers(new, "app", "touchpoints")

    async def go() -> None:
        # Recovery and the assignment signal both ask: each id is started (fencing) once.
        await asyncio.gather(producers.ensure([0, 1]), producers.ensure([1, 2]))
        assert (await producers.get(1)).tid == "app-touchpoints-1"
        # Retired ones stop in the background (a fenced producer's stop may wait on its batches).
        await producers.retain([1])
        await until(lambda: built["app-touchpoints-0"].stopped and built["app-touchpoints-2"].stopped)

    asyncio.run(go())
    assert sorted(started) == ["app-touchpoints-0", "app-touchpoints-1", "app-touchpoints-2"]
    assert [tid for tid, p in built.items() if p.stopped] == ["app-touchpoints-0", "app-touchpoints-2"]
    assert transactional_id("app", "touchpoints", 3) == "app-touchpoints-3"


# -- the consumer: Faust's commits leave the input topic out ---------------------------------------


def test_faust_commits_no_input_offset_in_exactly_once_mode() -> None:
    committed: list[Any] = []

    async def commit(offsets: Any = None) -> None:
        committed.append(offsets)

    wrapped = without_topic(commit, "touchpoints")
    tp_in, tp_other = TopicPartition("touchpoints", 0), TopicPartition("other", 0)
    asyncio.run(wrapped({tp_in: 5}))
    asyncio.run(wrapped({tp_in: 5, tp_other: 7}))
    assert committed == [{tp_other: 7}]


@pytest.mark.parametrize(("fenced_for", "exits"), [(None, False), (5.0, False), (31.0, True)])
def test_a_fenced_partition_the_group_does_not_move_away_restarts_the_worker(
    monkeypatch: pytest.MonkeyPatch, fenced_for: float | None, exits: bool
) -> None:
    from streams.live.faust import app as faust_app

    exited: list[int] = []
    monkeypatch.setattr(faust_app.os, "_exit", exited.append)
    monkeypatch.setattr(faust_app.logging, "shutdown", lambda: None)

    class Runtime:
        fenced: dict[int, float] = {} if fenced_for is None else {2: 1000.0}

        def clock(self) -> float:
            return 1000.0 + (fenced_for or 0.0)

    schedule = object.__new__(faust_app._Schedule)
    schedule.runtime = Runtime()  # type: ignore[assignment]
    schedule.fenced_grace = 30.0
    schedule._check_fenced()
    assert exited == ([faust_app.EXIT_BATCH_FAILED] if exits else [])


@pytest.mark.parametrize(("assigned", "exits"), [([0, 1], False), ([1, 2], True)])
def test_a_fenced_partition_given_back_without_leaving_restarts_the_worker_at_once(
    monkeypatch: pytest.MonkeyPatch, assigned: list[int], exits: bool
) -> None:
    """Faust recovers no partition a worker kept through a rebalance: the fenced one's state here
    lacks what its other owner committed, so the worker restarts (once) to recover it."""
    from streams.live.faust import app as faust_app

    exited: list[int] = []
    monkeypatch.setattr(faust_app.os, "_exit", exited.append)
    monkeypatch.setattr(faust_app.logging, "shutdown", lambda: None)

    class Runtime:
        fenced: ClassVar[dict[int, float]] = {2: 1000.0}

        def assign(self, partitions: Any) -> None:
            pass

    class Source:
        async def load_stream_times(self, partitions: list[int]) -> None:
            pass

    schedule = object.__new__(faust_app._Schedule)
    schedule.runtime = Runtime()  # type: ignore[assignment]
    schedule.source = Source()  # type: ignore[assignment]
    schedule.input = "in"
    asyncio.run(schedule.on_assigned(None, {TopicPartition("in", p) for p in assigned}))
    assert exited == ([faust_app.EXIT_BATCH_FAILED] if exits else [])
