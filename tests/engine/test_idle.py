"""The idle policy at replay speed: a fake wall clock walks a partition through quiet periods."""

from __future__ import annotations

from pathlib import Path

import pytest

from streams.engine import DictStore, Engine, IdleAdvance, Outcome, Processor, Step
from streams.errors import MalformedRecord
from streams.timeutil import HOUR, MINUTE, SECOND
from streams.topology import load_folder

# The v1 catalog: the shipped one gives activation_nudge a goal (contract 7.4), whose window
# is one more pending deadline, and these tests are about absence deadlines only.
TOPOLOGIES = Path(__file__).resolve().parents[1] / "golden" / "topologies-v1"
T0 = 1_790_000_000_000  # ms
IDLE_AFTER = 30 * SECOND


class Wall:
    """A wall clock that moves only when the test says so (seconds, as time.time)."""

    def __init__(self, ms: int) -> None:
        self.now = ms / 1000

    def __call__(self) -> float:
        return self.now

    def wait(self, ms: int) -> None:
        self.now += ms / 1000


@pytest.fixture(scope="module")
def engine() -> Engine:
    return Engine(load_folder(TOPOLOGIES))


def partition(engine: Engine, wall: Wall) -> Step:
    return Step(Processor(engine, DictStore(), IdleAdvance(IDLE_AFTER, wall)))


def purchase(eid: str, at: int, cust: str = "c1") -> dict[str, object]:
    return {
        "event_id": eid,
        "customer_id": cust,
        "type": "purchase",
        "occurred_at": at,
        "attributes": {"category": "phone"},
    }


def test_an_absence_deadline_fires_after_a_quiet_period(engine: Engine) -> None:
    wall = Wall(T0)
    step = partition(engine, wall)
    proc = step.processor
    assert step.take(purchase("p", T0))[0] is Outcome.EVALUATED
    wall.wait(IDLE_AFTER - 1)
    assert proc.advance_idle(backlog=0) == [] and proc.stream_time == T0  # not quiet long enough yet
    # A day of silence. The deadline is T0 + 24h; the watermark trails the advanced
    # stream time (wall - idle_after) by the lateness.
    wall.wait(24 * HOUR + proc.lateness)
    assert proc.advance_idle(backlog=0) == []  # one millisecond short
    assert proc.watermark == T0 + 24 * HOUR - 1
    wall.wait(1)
    fired = proc.advance_idle(backlog=0)
    assert [(d.topology, d.evidence) for d in fired] == [("activation_nudge", ("p",))]
    assert proc.stream_time == T0 + 24 * HOUR + proc.lateness
    assert proc.pending_timers() == 0


def test_without_the_policy_only_events_move_stream_time(engine: Engine) -> None:
    proc = Processor(engine, DictStore())
    Step(proc).take(purchase("p", T0))
    assert proc.advance_idle(backlog=0) == [] and proc.stream_time == T0


@pytest.mark.parametrize("backlog", [1, 5_000, None])
def test_a_partition_with_a_backlog_is_not_advanced(engine: Engine, backlog: int | None) -> None:
    wall = Wall(T0)
    step = partition(engine, wall)
    step.take(purchase("p", T0))
    wall.wait(25 * HOUR)
    # Records are waiting (or how many is unknown): the partition is lagging, not quiet.
    assert step.processor.advance_idle(backlog) == []
    assert step.processor.stream_time == T0
    assert step.processor.advance_idle(0)  # caught up: now it moves, and the nudge fires


def test_every_record_restarts_the_quiet_period_even_an_invalid_one(engine: Engine) -> None:
    wall = Wall(T0)
    step = partition(engine, wall)
    step.take(purchase("p", T0))
    for _ in range(3):  # garbage every 20 s: never quiet for 30 s
        wall.wait(20 * SECOND)
        assert step.take(MalformedRecord("malformed", "not Avro"))[0] is Outcome.INVALID
        assert step.processor.advance_idle(0) == []
    assert step.processor.stream_time == T0
    wall.wait(IDLE_AFTER)
    step.processor.advance_idle(0)
    assert step.processor.stream_time == int(wall() * 1000) - IDLE_AFTER


def test_the_advance_never_moves_stream_time_back(engine: Engine) -> None:
    wall = Wall(T0)
    step = partition(engine, wall)
    proc = step.processor
    ahead = T0 + 2 * HOUR  # event time ahead of the wall clock (a producer's clock is fast)
    step.take(purchase("p", ahead))
    for _ in range(10):  # quiet periods, each long enough, none reaching the event time
        wall.wait(10 * MINUTE)
        assert proc.advance_idle(0) == []
        assert proc.stream_time == ahead
    # An event just behind the stream time is still on time: nothing was moved back.
    assert step.take(purchase("q", ahead - MINUTE, cust="c2"))[0] is Outcome.EVALUATED
    wall.wait(3 * HOUR)
    proc.advance_idle(0)
    assert proc.stream_time == int(wall() * 1000) - IDLE_AFTER > ahead


def test_an_idle_advance_makes_a_late_record_late(engine: Engine) -> None:
    # What the backlog check protects: once the clock moved stream time, old records are late.
    wall = Wall(T0)
    step = partition(engine, wall)
    step.take(purchase("p", T0))
    wall.wait(HOUR)
    step.processor.advance_idle(0)
    outcome, decisions, _, rejection = step.take(purchase("old", T0 + MINUTE, cust="c2"))
    assert (outcome, decisions) == (Outcome.LATE, [])
    assert rejection is not None and rejection.reason == "late"
