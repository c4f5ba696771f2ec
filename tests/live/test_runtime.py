"""The live runtime without Faust: an in-memory sink that records the order of effects."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Sequence
from pathlib import Path
from typing import Any

import pytest

from streams.codec import avro
from streams.decisions import Decision, Kind, Status
from streams.live import metrics as live_metrics
from streams.live.codecs import Codecs
from streams.live.limits import RecordLimits, record_size
from streams.live.partitioning import Partitioner
from streams.live.runtime import (
    H_REASON,
    H_ROUTED,
    Headers,
    Incoming,
    Record,
    Runtime,
    RuntimeIO,
    StateTable,
    decode_stream_time,
)
from streams.settings import Settings
from streams.topology import load_folder

TOPOLOGIES = Path(__file__).resolve().parents[2] / "topologies"
NOW = 1_790_000_000_000


class Log:
    def __init__(self) -> None:
        self.effects: list[tuple[str, Any]] = []


class Sink:
    """Acknowledges each record one loop turn after it is sent, logging when."""

    def __init__(self, log: Log) -> None:
        self.log = log
        self.pending: list[tuple[str, bytes | None, bytes | None, int | None, dict[str, bytes]]] = []

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
        self.pending.append((topic, key, value, partition, dict(headers)))

    async def deliver(self) -> None:
        for fut in await self.submit():
            await fut

    async def submit(self) -> list[Awaitable[object]]:
        sent, self.pending = self.pending, []

        async def ack(record: Any) -> None:
            await asyncio.sleep(0)
            self.log.effects.append(("acked", record))

        return [asyncio.ensure_future(ack(r)) for r in sent]


class Source:
    """The consumer side: logs acks; the broker's high watermarks are set by the test."""

    partitions = 4

    def __init__(self, log: Log) -> None:
        self.log = log
        self.ready = True
        self.high: dict[int, int] = {}
        self.stream_times: dict[int, int] = {}  # committed with the offsets, as read on assignment
        self.offsets: dict[int, int] = {}  # the offsets those stream times were committed with

    def ack(self, records: Sequence[Incoming]) -> None:
        self.log.effects.append(("ack", [r.offset for r in records]))

    def recovered(self) -> bool:
        return self.ready

    def highwater(self, partition: int) -> int | None:
        return self.high.get(partition)

    def committed_stream_time(self, partition: int) -> int | None:
        return self.stream_times.get(partition)

    def committed_offset(self, partition: int) -> int | None:
        return self.offsets.get(partition)


def make(log: Log, clock: list[float], limits: RecordLimits | None = None, **settings: Any) -> tuple[Runtime, Source]:
    source = Source(log)
    io = RuntimeIO(
        source=source,
        sink=Sink(log),
        state=StateTable({}, lambda p, k, v: log.effects.append(("state", (p, k, v)))),
        codecs=Codecs(lambda b: avro.decode(b, avro.local_registry().resolve), lambda d: d.decision_id.encode(), 0),
        metrics=live_metrics.create(),
        limits=limits or RecordLimits(),
    )
    # The fake Sink has no transactional commit: at-least-once, named whatever the default.
    flat = {"redis_url": "", "processing_guarantee": "at_least_once", **settings}
    runtime = Runtime(Settings.from_flat(flat), load_folder(TOPOLOGIES), io, clock=lambda: clock[0])
    return runtime, source


def event(eid: str, cust: str, etype: str, at: int, **attrs: str) -> bytes:
    rec = {
        "event_id": eid,
        "customer_id": cust,
        "type": etype,
        "occurred_at": at,
        "channel": "web",
        "attributes": attrs or None,
    }
    return avro.encode(rec, avro.touchpoint_schema(), avro.touchpoint_schema_id())


def on_partition(cust: str) -> int:
    return Partitioner(4)(cust)


def records(*values: tuple[str, bytes], partition: int | None = None, start: int = 0) -> list[Record]:
    return [
        Record(
            "touchpoints",
            partition if partition is not None else on_partition(cust),
            start + i,
            cust.encode(),
            value,
            (),
            NOW / 1000,
        )
        for i, (cust, value) in enumerate(values)
    ]


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_decisions_are_acknowledged_before_state_is_written() -> None:
    log, clock = Log(), [NOW / 1000]
    rt, _ = make(log, clock)
    batch = records(
        ("c1", event("p", "c1", "purchase", NOW, category="phone")),
        ("c1", event("f", "c1", "activation_failed", NOW + 1000)),
        ("c1", event("s", "c1", "support_contact", NOW + 2000, resolved="false")),
    )
    outcome = run(rt.handle(batch))
    kinds = [d.kind for d in outcome.decisions]
    assert sorted(kinds) == ["ENGAGE", "SUPPRESS", "SUPPRESS", "SUPPRESS"]
    order = [kind for kind, _ in log.effects]
    # Every send acknowledged, then the one state write for the one customer, then the batch's ack.
    assert order == ["acked"] * (4 + 4) + ["state", "ack"]
    assert log.effects[-2][1][:2] == (on_partition("c1"), "c1")
    assert log.effects[-1][1] == [0, 1, 2]


def test_bad_records_go_to_the_dlq_with_reasons_and_the_batch_goes_on() -> None:
    log, clock = Log(), [NOW / 1000]
    rt, _ = make(log, clock)
    p = on_partition("c2")
    batch = [
        Record("touchpoints", p, 7, b"c2", b"not avro", (("trace", b"x"),), NOW / 1000),
        Record("touchpoints", p, 8, b"c2", None, (), NOW / 1000),
        *records(("c2", event("ok", "c2", "page_view", NOW)), start=9),
    ]
    outcome = run(rt.handle(batch))
    assert outcome.rejected == 2
    dlq = [e[1] for e in log.effects if e[0] == "acked" and e[1][0] == "touchpoints.dlq"]
    assert [(v, h[H_REASON], h["tactful.source.offset"]) for _, _, v, _, h in dlq] == [
        (b"not avro", b"malformed", b"7"),
        (None, b"malformed", b"8"),
    ]
    assert dlq[0][4]["trace"] == b"x"  # the original headers are kept
    assert outcome.decisions == [] and "c2" not in rt.data  # the good page_view was taken in and dropped


def test_faust_consumer_messages_are_taken_as_they_come() -> None:
    # The worker hands Faust's own messages over, not copies: headers as aiokafka
    # gives them (pairs; a mapping from other drivers), timestamps in seconds.
    from faust.types.tuples import ConsumerMessage

    log, clock = Log(), [NOW / 1000]
    rt, _ = make(log, clock)
    p = on_partition("c5")

    def message(offset: int, value: bytes, headers: Any) -> ConsumerMessage:
        return ConsumerMessage("touchpoints", p, offset, NOW / 1000 - 0.25, 1, headers, b"c5", value, None)

    batch = [
        message(1, b"not avro", [("trace", b"a")]),
        message(2, b"not avro either", {"trace": b"b"}),
        message(3, event("p", "c5", "purchase", NOW, category="phone"), []),
        message(4, event("f", "c5", "activation_failed", NOW + 1000), None),
        message(5, event("s", "c5", "support_contact", NOW + 2000, resolved="false"), ()),
    ]
    outcome = run(rt.handle(batch))
    dlq = [e[1] for e in log.effects if e[0] == "acked" and e[1][0] == "touchpoints.dlq"]
    assert [h["trace"] for *_, h in dlq] == [b"a", b"b"]
    assert outcome.rejected == 2 and outcome.decisions
    # Append to decision, from the message's own timestamp: a quarter second each.
    samples = {x.name.rsplit("_", 1)[-1]: x.value for x in rt.metrics.latency.collect()[0].samples}
    emitted = len([d for d in outcome.decisions if d.emitted])
    assert emitted and samples["count"] == emitted
    assert samples["sum"] == pytest.approx(0.25 * emitted)


def test_a_record_on_the_wrong_partition_is_forwarded_to_its_customers() -> None:
    log, clock = Log(), [NOW / 1000]
    rt, _ = make(log, clock)
    owner = on_partition("c3")
    wrong = (owner + 1) % 4
    run(rt.handle(records(("c3", event("e", "c3", "purchase", NOW, category="phone")), partition=wrong)))
    forwarded = [e[1] for e in log.effects if e[0] == "acked"]
    assert [(t, k, p, H_ROUTED in h) for t, k, _, p, h in forwarded] == [("touchpoints", b"c3", owner, True)]
    assert "c3" not in rt.data  # decided only once it arrives on its own partition


@pytest.mark.parametrize("backlog, fires", [(0, True), (5, False)])
def test_idle_partitions_advance_by_the_clock_only_when_caught_up(backlog: int, fires: bool) -> None:
    log, clock = Log(), [NOW / 1000]
    rt, source = make(log, clock, idle_after="30s")
    batch = records(("c4", event("b", "c4", "purchase", NOW, category="tablet")))
    source.high[batch[0].partition] = len(batch) + backlog
    run(rt.handle(batch))
    clock[0] += 25 * 3600  # a day and an hour of silence
    fired: list[Decision] = run(rt.tick())
    assert [(d.topology, d.evidence) for d in fired] == ([("activation_nudge", ("b",))] if fires else [])


def test_assigned_partitions_start_only_once_recovered() -> None:
    log, clock = Log(), [NOW / 1000]
    rt, source = make(log, clock)
    source.ready = False
    rt.assign([0, 1])
    run(rt.tick())
    assert rt.runs == {}
    source.ready = True
    run(rt.tick())
    assert sorted(rt.runs) == [0, 1]


def gauge(rt: Runtime, name: str, partition: int) -> float | None:
    return rt.metrics.registry.get_sample_value(name, {"partition": str(partition)})


def appended(cust: str, value: bytes, offset: int, at: float) -> Record:
    return Record("touchpoints", on_partition(cust), offset, cust.encode(), value, (), at)


DAY = 86_400.0


def test_a_partition_ahead_of_the_wall_clock_shows_it() -> None:
    # Issue 9: `tactful feed` unrolled scenarios days past the present, and the lag read 0.
    log, clock = Log(), [NOW / 1000]
    rt, source = make(log, clock)
    p = on_partition("c5")
    source.high[p] = 1
    run(
        rt.handle(
            [appended("c5", event("a", "c5", "purchase", NOW + int(9 * DAY * 1000), category="tv"), 0, NOW / 1000)]
        )
    )
    run(rt.tick())
    assert gauge(rt, "tactful_stream_time_ahead_seconds", p) == 9 * DAY
    assert gauge(rt, "tactful_stream_time_behind_seconds", p) == 0
    lateness = rt.runs[p].processor.lateness / 1000
    assert gauge(rt, "tactful_watermark_lag_seconds", p) == -(9 * DAY - lateness)  # negative, not clamped to 0
    assert gauge(rt, "tactful_consumer_lag_records", p) == 0
    assert gauge(rt, "tactful_consumer_lag_seconds", p) == 0


def test_a_partition_behind_the_wall_clock_shows_it() -> None:
    log, clock = Log(), [NOW / 1000]
    rt, source = make(log, clock, idle_after="30s")
    p = on_partition("c6")
    source.high[p] = 5  # a backlog: the idle policy leaves stream time where the events put it
    run(rt.handle([appended("c6", event("a", "c6", "purchase", NOW - 3_600_000, category="tv"), 0, NOW / 1000)]))
    run(rt.tick())
    assert gauge(rt, "tactful_stream_time_behind_seconds", p) == 3600
    assert gauge(rt, "tactful_stream_time_ahead_seconds", p) == 0


def test_consumer_lag_in_records_and_seconds() -> None:
    log, clock = Log(), [NOW / 1000]
    rt, source = make(log, clock, idle_after="30s")
    p = on_partition("c7")
    t0 = NOW / 1000
    batch = [appended("c7", event(f"e{i}", "c7", "page_view", NOW + i * 1000), i, t0 + i) for i in range(3)]
    source.high[p] = 10  # seven records wait on the broker
    run(rt.handle(batch))
    clock[0] = t0 + 2 + 60
    run(rt.tick())
    assert gauge(rt, "tactful_consumer_lag_records", p) == 7
    assert gauge(rt, "tactful_consumer_lag_seconds", p) == 60  # since the last processed record's append

    source.high[p] = 3  # caught up
    clock[0] += 3600
    run(rt.tick())
    assert gauge(rt, "tactful_consumer_lag_records", p) == 0
    assert gauge(rt, "tactful_consumer_lag_seconds", p) == 0

    # A record arrives after an hour of quiet: its wait is counted from the tick that
    # last saw the partition caught up, not from the hour-old last append.
    source.high[p] = 4
    clock[0] += 5
    run(rt.tick())
    assert gauge(rt, "tactful_consumer_lag_records", p) == 1
    assert gauge(rt, "tactful_consumer_lag_seconds", p) == 5


def test_a_partition_without_a_processed_record_exports_no_lag_guess() -> None:
    log, clock = Log(), [NOW / 1000]
    rt, source = make(log, clock)
    rt.assign([2])
    source.high[2] = 1_000  # the committed offset is unknown to the runtime
    run(rt.tick())
    assert 2 in rt.runs
    assert gauge(rt, "tactful_consumer_lag_records", 2) is None
    assert gauge(rt, "tactful_stream_time_ahead_seconds", 2) is None
    assert gauge(rt, "tactful_timers_pending", 2) == 0


def test_a_revoked_partition_s_series_go_away() -> None:
    log, clock = Log(), [NOW / 1000]
    rt, source = make(log, clock)
    p = on_partition("c8")
    source.high[p] = 1
    run(rt.handle([appended("c8", event("a", "c8", "purchase", NOW, category="tv"), 0, NOW / 1000)]))
    run(rt.tick())
    names = [
        "tactful_watermark_lag_seconds",
        "tactful_stream_time_ahead_seconds",
        "tactful_stream_time_behind_seconds",
        "tactful_consumer_lag_records",
        "tactful_consumer_lag_seconds",
        "tactful_timers_pending",
        "tactful_timers_pending_total",
    ]
    assert all(gauge(rt, n, p) is not None for n in names)
    run(rt.revoke([p]))
    run(rt.tick())
    assert [n for n in names if gauge(rt, n, p) is not None] == []


def test_gauges_keep_their_old_total_names_for_one_release() -> None:
    log, clock = Log(), [NOW / 1000]
    rt, source = make(log, clock)
    p = on_partition("c9")
    source.high[p] = 1
    run(rt.handle([appended("c9", event("b", "c9", "purchase", NOW, category="tablet"), 0, NOW / 1000)]))
    run(rt.tick())
    rt.metrics.degraded.labels("redis").set(1)
    reg = rt.metrics.registry
    assert gauge(rt, "tactful_timers_pending", p) == gauge(rt, "tactful_timers_pending_total", p) == 1
    assert reg.get_sample_value("tactful_state_customers") == reg.get_sample_value("tactful_state_customers_total") == 1
    for name in ("tactful_worker_degraded", "tactful_worker_degraded_total"):
        assert reg.get_sample_value(name, {"cause": "redis"}) == 1


def test_a_lag_the_worker_can_no_longer_tell_is_dropped_not_left_stale() -> None:
    log, clock = Log(), [NOW / 1000]
    rt, source = make(log, clock)
    p = on_partition("c10")
    source.high[p] = 3
    run(rt.handle([appended("c10", event("a", "c10", "purchase", NOW, category="tv"), 0, NOW / 1000)]))
    run(rt.tick())
    assert gauge(rt, "tactful_consumer_lag_records", p) == 2
    del source.high[p]  # the consumer lost the partition's high watermark
    run(rt.tick())
    assert gauge(rt, "tactful_consumer_lag_records", p) is None
    assert gauge(rt, "tactful_consumer_lag_seconds", p) is None
    assert gauge(rt, "tactful_stream_time_behind_seconds", p) == 0  # the rest stays


class BlockingSink(Sink):
    """Holds every delivery until the test releases it: a batch stays in flight."""

    def __init__(self, log: Log) -> None:
        super().__init__(log)
        self.delivering = asyncio.Event()
        self.release = asyncio.Event()

    async def deliver(self) -> None:
        self.delivering.set()
        await self.release.wait()
        await super().deliver()


def test_a_revocation_waits_for_the_batch_in_flight_so_no_ack_covers_unwritten_state() -> None:
    log, clock = Log(), [NOW / 1000]
    rt, _ = make(log, clock)

    async def go() -> None:
        sink = BlockingSink(log)
        rt.sink = sink
        batch = records(("c1", event("p", "c1", "purchase", NOW, category="phone")))
        p = batch[0].partition
        rt.assign([p])
        handling = asyncio.ensure_future(rt.handle(batch))
        await sink.delivering.wait()  # the batch's decisions are being sent
        revoked = rt.revoke([p])
        revoking = asyncio.ensure_future(revoked) if asyncio.iscoroutine(revoked) else None
        for _ in range(5):
            await asyncio.sleep(0)
        # The revocation has not dropped the partition under the batch's feet.
        assert p in rt.runs
        sink.release.set()
        await handling
        if revoking is not None:
            await revoking
        assert p not in rt.runs

    run(go())
    order = [kind for kind, _ in log.effects]
    assert "ack" in order
    # The record's state reached the changelog before the record was acked.
    assert "state" in order and order.index("state") < order.index("ack")


def test_a_dead_letter_larger_than_the_dlq_topic_takes_is_cut_to_fit_and_says_so() -> None:
    import hashlib

    log, clock = Log(), [NOW / 1000]
    limit = 1_000_000
    rt, _ = make(log, clock, RecordLimits({"touchpoints.dlq": limit}))
    p = on_partition("c6")
    huge = b"\x00" * 2_000_000  # compressible: the input topic took it, sent with lz4
    run(rt.handle([Record("touchpoints", p, 3, b"c6", huge, (("trace", b"t"),), NOW / 1000)]))
    dlq = [e[1] for e in log.effects if e[0] == "acked" and e[1][0] == "touchpoints.dlq"]
    assert len(dlq) == 1
    _, key, value, _, headers = dlq[0]
    assert record_size(key, value, list(headers.items())) <= limit
    assert key == b"c6" and value and huge.startswith(value) and len(value) > limit - 2000
    assert headers["tactful.truncated"] == b"value"
    assert headers["tactful.original.size"] == b"2000000"
    assert headers["tactful.original.sha256"] == hashlib.sha256(huge).hexdigest().encode()
    assert headers[H_REASON] == b"too_large" and headers["trace"] == b"t"
    assert ("ack", [3]) in log.effects


def test_a_dead_letter_that_fits_is_sent_whole_without_truncation_headers() -> None:
    log, clock = Log(), [NOW / 1000]
    rt, _ = make(log, clock, RecordLimits({"touchpoints.dlq": 1_000_000}))
    p = on_partition("c7")
    run(rt.handle([Record("touchpoints", p, 0, b"c7", b"x" * 70_000, (), NOW / 1000)]))
    (dead,) = [e[1] for e in log.effects if e[0] == "acked" and e[1][0] == "touchpoints.dlq"]
    assert dead[2] == b"x" * 70_000 and "tactful.truncated" not in dead[4]


def test_a_re_routed_record_drops_the_headers_that_would_not_fit_the_input_topic() -> None:
    log, clock = Log(), [NOW / 1000]
    rt, _ = make(log, clock, RecordLimits({"touchpoints": 100_000}))
    owner = on_partition("c8")
    value = event("e", "c8", "purchase", NOW, category="phone")
    wrong = Record("touchpoints", (owner + 1) % 4, 0, b"c8", value, (("big", b"h" * 200_000),), NOW / 1000)
    run(rt.handle([wrong]))
    (sent,) = [e[1] for e in log.effects if e[0] == "acked"]
    topic, key, got, partition, headers = sent
    assert key == b"c8"
    assert (topic, partition, got) == ("touchpoints", owner, value)
    assert "big" not in headers and headers["tactful.truncated"] == b"headers" and H_ROUTED in headers


MINUTE = 60_000


@pytest.mark.parametrize("restored, late", [(NOW + 60 * MINUTE, True), (None, False)])
def test_stream_time_committed_before_a_restart_decides_lateness_after_it(restored: int | None, late: bool) -> None:
    # Lateness is 10 minutes (topologies/policies.yaml): an event 11 minutes older than
    # the stream time a partition had reached is late, restart or not.
    log, clock = Log(), [NOW / 1000]
    rt, source = make(log, clock)
    p = on_partition("c9")
    if restored is not None:
        source.stream_times[p] = restored
    rt.assign([p])
    run(rt.tick())  # recovered: the partition starts, its stream time restored
    assert rt.runs[p].processor.stream_time == restored
    old = NOW + 60 * MINUTE - 11 * MINUTE
    run(rt.handle(records(("c9", event("o", "c9", "purchase", old, category="phone")), start=5)))
    dlq = [e[1] for e in log.effects if e[0] == "acked" and e[1][0] == "touchpoints.dlq"]
    assert [h[H_REASON] for *_, h in dlq] == ([b"late"] if late else [])


def test_commit_metadata_carries_the_stream_time_of_the_records_before_the_offset() -> None:
    log, clock = Log(), [NOW / 1000]
    rt, source = make(log, clock)
    p = on_partition("c9")
    source.stream_times[p] = NOW - MINUTE
    rt.assign([p])
    run(rt.tick())
    assert decode_stream_time(rt.commit_metadata(p, 0)) == NOW - MINUTE  # nothing processed yet
    run(rt.handle(records(("c9", event("a", "c9", "page_view", NOW)), start=0)))
    run(rt.handle(records(("c9", event("b", "c9", "page_view", NOW + MINUTE)), start=1)))
    # Offsets computed before the second batch was acked get the first batch's stream time.
    assert decode_stream_time(rt.commit_metadata(p, 1)) == NOW
    assert decode_stream_time(rt.commit_metadata(p, 2)) == NOW + MINUTE
    assert rt.commit_metadata((p + 1) % 4, 2) is None  # a partition never run: nothing to say
    # Revoked, the partition's history stays for the commit Faust makes after revoking.
    run(rt.revoke([p]))
    assert decode_stream_time(rt.commit_metadata(p, 2)) == NOW + MINUTE


def test_an_acked_offset_already_has_its_stream_time_when_the_ack_is_made() -> None:
    """Faust commits from its consumer thread, at any moment after an ack: a commit made right
    after it must carry the batch's stream time (else a restart forgets it; a flaky integration
    test found the window)."""
    log, clock = Log(), [NOW / 1000]
    rt, source = make(log, clock)
    p = on_partition("c9")
    seen: list[int | None] = []

    def ack(records: Sequence[Incoming]) -> None:
        end = max(r.offset for r in records) + 1
        seen.append(decode_stream_time(rt.commit_metadata(p, end)))

    source.ack = ack  # type: ignore[method-assign]
    run(rt.handle(records(("c9", event("a", "c9", "page_view", NOW)), start=0)))
    assert seen == [NOW]


def test_the_restored_stream_time_is_committed_with_no_offset_before_the_one_it_came_with() -> None:
    """Faust may still commit offsets acked before the partition came back (its own acks of an
    earlier ownership, stale messages): the restored stream time belongs to the committed offset it
    was read with, and must not ride an earlier one. It did (chaos: hundreds of events processed
    once already, then dead-lettered as late after the next restart)."""
    log, clock = Log(), [NOW / 1000]
    rt, source = make(log, clock)
    p = on_partition("c9")
    source.stream_times[p], source.offsets[p] = NOW + 60 * MINUTE, 100
    rt.assign([p])
    assert rt.commit_metadata(p, 60) is None  # assigned, not started yet
    run(rt.tick())  # started, its stream time restored
    assert rt.commit_metadata(p, 60) is None
    assert decode_stream_time(rt.commit_metadata(p, 100)) == NOW + 60 * MINUTE
    run(rt.handle(records(("c9", event("a", "c9", "page_view", NOW + 61 * MINUTE)), start=100)))
    assert rt.commit_metadata(p, 60) is None
    assert decode_stream_time(rt.commit_metadata(p, 101)) == NOW + 61 * MINUTE


@pytest.mark.parametrize("start, late", [(60, False), (100, True), (120, True)])
def test_the_restored_stream_time_is_not_applied_to_records_before_its_offset(start: int, late: bool) -> None:
    """The consumer may resume before the offset the stream time was read with (an offset committed
    between the read on assignment and the seek after recovery): the records from there were
    processed once already, at a lower stream time, and must not be found late now."""
    log, clock = Log(), [NOW / 1000]
    rt, source = make(log, clock)
    p = on_partition("c9")
    source.stream_times[p], source.offsets[p] = NOW + 60 * MINUTE, 100
    rt.assign([p])
    run(rt.tick())
    old = NOW + 60 * MINUTE - 11 * MINUTE  # late by the restored stream time (lateness: 10 minutes)
    run(rt.handle(records(("c9", event("o", "c9", "purchase", old, category="phone")), start=start)))
    dlq = [e[1] for e in log.effects if e[0] == "acked" and e[1][0] == "touchpoints.dlq"]
    assert [h[H_REASON] for *_, h in dlq] == ([b"late"] if late else [])
    assert (rt.runs[p].processor.stream_time == NOW + 60 * MINUTE) is late
    # What is committed next carries the stream time this run really reached.
    assert decode_stream_time(rt.commit_metadata(p, start + 1)) == (NOW + 60 * MINUTE if late else old)


@pytest.mark.parametrize("etype", ["page_view", "not_read_by_any_topology"])
def test_a_partition_read_again_from_an_earlier_offset_takes_back_the_stream_time_it_had_there(etype: str) -> None:
    """Faust seeks every assigned partition to its committed offset once recovery is done, and
    input fetched before that seek may have been processed already: the partition keeps running
    here and is read again from there. Those records were processed once at a lower stream time;
    at the one the partition had reached past them they were dead-lettered as late (chaos, seed 5:
    hundreds of valid events, after the broker outage), and that stream time was committed with
    the lower offsets read again, so the next restart found them late too."""
    log, clock = Log(), [NOW / 1000]
    rt, _ = make(log, clock)
    p = on_partition("c9")
    first = records(("c9", event("x", "c9", etype, NOW - 20 * MINUTE)), start=1)
    run(rt.handle(records(("c9", event("a", "c9", "page_view", NOW - 30 * MINUTE)), start=0)))
    run(rt.handle(first))
    run(rt.handle(records(("c9", event("b", "c9", "page_view", NOW)), start=2)))
    assert rt.runs[p].processor.stream_time == NOW  # offset 1 would be late now (lateness: 10 minutes)
    run(rt.handle(first))  # read again from offset 1
    dlq = [e[1] for e in log.effects if e[0] == "acked" and e[1][0] == "touchpoints.dlq"]
    assert dlq == []
    assert rt.runs[p].processor.stream_time == NOW - 20 * MINUTE  # as when offset 1 was first done
    # What is committed with the offsets read again is the stream time they had, not NOW.
    assert decode_stream_time(rt.commit_metadata(p, 1)) == NOW - 30 * MINUTE
    assert decode_stream_time(rt.commit_metadata(p, 2)) == NOW - 20 * MINUTE
    run(rt.handle(records(("c9", event("b", "c9", "page_view", NOW)), start=2)))
    assert decode_stream_time(rt.commit_metadata(p, 3)) == NOW


def test_a_partition_read_again_from_before_all_it_acked_starts_without_a_stream_time() -> None:
    log, clock = Log(), [NOW / 1000]
    rt, source = make(log, clock)
    p = on_partition("c9")
    source.stream_times[p], source.offsets[p] = NOW, 10
    rt.assign([p])
    run(rt.handle(records(("c9", event("b", "c9", "page_view", NOW + MINUTE)), start=10)))
    run(rt.handle(records(("c9", event("o", "c9", "page_view", NOW - 20 * MINUTE)), start=4)))  # read again from 4
    dlq = [e[1] for e in log.effects if e[0] == "acked" and e[1][0] == "touchpoints.dlq"]
    assert dlq == []
    assert rt.runs[p].processor.stream_time == NOW - 20 * MINUTE
    assert rt.commit_metadata(p, 4) is None  # nothing known of the stream time before offset 4


@pytest.mark.parametrize("metadata", ["", "something else", "tactful/1 stream_time=x", None])
def test_commit_metadata_of_another_kind_restores_nothing(metadata: str | None) -> None:
    assert decode_stream_time(metadata) is None


def test_a_batch_acks_only_the_records_of_partitions_whose_state_it_wrote() -> None:
    # Should a partition ever be dropped mid-batch (revoke takes the lock, so it is not),
    # its records stay unacked: read again, rather than committed past lost state.
    log, clock = Log(), [NOW / 1000]
    rt, _ = make(log, clock)

    async def go() -> None:
        sink = BlockingSink(log)
        rt.sink = sink
        batch = records(
            ("c1", event("p", "c1", "purchase", NOW, category="phone")),
            ("c2", event("q", "c2", "purchase", NOW, category="phone")),
        )
        assert batch[0].partition != batch[1].partition
        handling = asyncio.ensure_future(rt.handle(batch))
        await sink.delivering.wait()
        rt.runs.pop(batch[0].partition)  # behind the lock's back
        sink.release.set()
        await handling

    run(go())
    acks = [offsets for kind, offsets in log.effects if kind == "ack"]
    assert acks == [[1]]


def test_a_restarted_partition_keeps_the_deadline_of_a_goal_with_no_absence_timer() -> None:
    """A goal's window end is a deadline (contract 7.4): a restart must not lose it, even for a
    customer whose state holds no absence timer (failed_login_guard: a count, with a 1d goal)."""
    data: dict[str, Any] = {}

    def runtime() -> tuple[Runtime, Log]:
        log = Log()
        io = RuntimeIO(
            source=Source(log),
            sink=Sink(log),
            state=StateTable(data, lambda p, k, v: log.effects.append(("state", (p, k, v)))),
            codecs=Codecs(lambda b: avro.decode(b, avro.local_registry().resolve), lambda d: d.decision_id.encode(), 0),
            metrics=live_metrics.create(),
            limits=RecordLimits(),
        )
        # The fake Sink has no transactional commit: at-least-once, named whatever the default.
        settings = Settings.from_flat({"redis_url": "", "idle_after": "3650d", "processing_guarantee": "at_least_once"})
        return Runtime(settings, load_folder(TOPOLOGIES), io, clock=lambda: NOW / 1000), log

    first, _ = runtime()
    logins = [("c5", event(f"l{i}", "c5", "login_failed", NOW + i * MINUTE)) for i in range(5)]
    fired = run(first.handle(records(*logins)))
    assert any(d.topology == "failed_login_guard" for d in fired.decisions)
    state = first.runs[on_partition("c5")].store.get("c5")
    assert state is not None and state.goals and not state.timers

    again, _ = runtime()  # a restart: the same table, a new runtime
    p = on_partition("c5")
    again.assign([p])
    run(again.tick())
    assert again.runs[p].processor.pending_timers() == 1
    later = run(again.handle(records(("c5", event("t", "c5", "clock_tick", NOW + 2 * 86_400_000)), start=5)))
    assert [(d.kind, d.status) for d in later.decisions if d.topology == "failed_login_guard"] == [
        (Kind.GOAL, Status.MISSED)
    ]


@pytest.mark.parametrize("indexed", [True, False])
def test_a_partition_lists_the_customers_written_live_as_well_as_the_recovered_ones(indexed: bool) -> None:
    # The memory store's index of key partitions holds what recovery applied; customers first
    # seen live must be listed too, or a sweep (a catalog switch, a restart of the partition's
    # run) never sees them. Found by tests/integration/test_catalog_deploy.py.
    from streams.engine.state import CustomerState
    from streams.live.runtime import PartitionStore

    owner = Partitioner(4)
    recovered = [f"r{i}" for i in range(40)]
    data: dict[str, Any] = {cid: b"{}" for cid in recovered}
    index: dict[str, int] | None = {cid: owner(cid) for cid in recovered} if indexed else None
    live = [f"live{i}" for i in range(40)]
    stores = {p: PartitionStore(p, data, owner, index) for p in range(4)}
    for cid in live:
        stores[owner(cid)].put(cid, CustomerState())
    gone = live[0]
    stores[owner(gone)].delete(gone)
    for p, store in stores.items():
        expected = sorted(cid for cid in recovered + live[1:] if owner(cid) == p)
        assert sorted(store.customers()) == expected
