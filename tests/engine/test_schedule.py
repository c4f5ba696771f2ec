"""The catalog-change API the live workers use (contract 8): a shared :class:`CatalogSchedule`, changes
added while processors run, refusal of a change in the past, and ``Processor.resume`` after a restart."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from streams.decisions import Decision
from streams.engine import CatalogSchedule, DictStore, Engine, IdleAdvance, Processor
from streams.engine.processor import NEVER
from streams.engine.state import CustomerState
from streams.errors import CatalogChangeError
from streams.events import validate_event
from streams.replay import replay_numbered
from streams.topology import Catalog, load_folder
from tests.contract.helpers import engage, ev, ms, on, suppress, topo, write_dir

IDLE = {"absence": {"after": {"event": "cart"}, "missing": {"event": "buy"}, "for": "1h"}}


@pytest.fixture
def catalogs(tmp_path: Path) -> tuple[Catalog, Catalog]:
    v1 = write_dir(tmp_path / "v1", [topo("idle", IDLE, [engage("sms")]), on("quiet", "go", [suppress(["sms"], "1d")])])
    v2 = write_dir(tmp_path / "v2", [topo("idle", IDLE, [engage("email")], version=2)], policies={"lateness": "30m"})
    return load_folder(v1), load_folder(v2)


EVENTS = [
    ev("g1", "c2", "go", "+0"),
    ev("k1", "c1", "cart", "+5m"),
    ev("k2", "c3", "cart", "+50m"),
    ev("x1", "c4", "cart", "+1h20m"),
    ev("x2", "c4", "buy", "+3h"),
]


def run(proc: Processor, records: list[dict[str, Any]]) -> list[Decision]:
    out: list[Decision] = []
    for r in records:
        out.extend(proc.process(validate_event(r))[1])
    return out


def replayed(catalogs: tuple[Catalog, Catalog], at: str) -> list[Decision]:
    res = replay_numbered(catalogs[0], enumerate(EVENTS, 1), ms("+3h"), switches=[(ms(at), catalogs[1])])
    return res.all_decisions


def test_a_change_added_while_running_applies_as_replay_applies_it(catalogs):
    """The live path: the version arrives after some events; applied when the watermark reaches T."""
    schedule = CatalogSchedule(catalogs[0])
    proc = Processor(schedule.initial, DictStore(), schedule=schedule)
    out = run(proc, EVENTS[:2])
    schedule.add(ms("+1h"), catalogs[1])
    out += run(proc, EVENTS[2:])
    out += proc.advance_watermark(ms("+3h"))
    assert sorted(out, key=Decision.sort_key) == replayed(catalogs, "+1h")
    assert proc.applied == 1 and proc.engine is schedule.changes[0].engine
    assert [d.kind for d in out if d.topology == "quiet"] == ["SUPPRESS", "RELEASE"]


def test_a_change_at_or_behind_a_followers_watermark_is_refused(catalogs):
    schedule = CatalogSchedule(catalogs[0])
    proc = Processor(schedule.initial, DictStore(), schedule=schedule)
    assert schedule.earliest() is None
    run(proc, EVENTS[:3])  # stream time +50m: watermark +40m
    assert schedule.earliest() == ms("+40m") + 1
    with pytest.raises(CatalogChangeError, match="too late"):
        schedule.add(ms("+40m"), catalogs[1])
    assert schedule.changes == []
    schedule.add(ms("+40m") + 1, catalogs[1])
    assert len(schedule.changes) == 1


def test_each_follower_switches_at_its_own_watermark(catalogs):
    """Live: one schedule for every partition; each partition applies the change when its watermark does."""
    schedule = CatalogSchedule(catalogs[0])
    schedule.add(ms("+1h"), catalogs[1])
    p1 = Processor(schedule.initial, DictStore(), schedule=schedule)
    p2 = Processor(schedule.initial, DictStore(), schedule=schedule)
    run(p1, [ev("a", "c1", "x", "+2h")])
    run(p2, [ev("b", "c2", "x", "+30m")])
    assert (p1.applied, p2.applied) == (1, 0)
    assert p1.engine.catalog is catalogs[1] and p2.engine.catalog is catalogs[0]
    assert p1.lateness == 30 * 60_000 and p2.lateness == 10 * 60_000


def test_resume_takes_changes_reached_as_applied_and_decides_nothing(catalogs):
    """A restarted partition: its restored state already holds the change's effects."""
    schedule = CatalogSchedule(catalogs[0])
    schedule.add(ms("+1h"), catalogs[1])
    store = DictStore()
    store.put("c1", CustomerState())
    proc = Processor(schedule.initial, store, schedule=schedule)
    proc.resume(ms("+2h"))
    assert proc.applied == 1 and proc.engine.catalog is catalogs[1]
    assert proc.watermark == ms("+2h") - 10 * 60_000  # the floor kept when lateness grew to 30m
    assert run(proc, [ev("g", "c9", "go", "+2h1m")]) == []  # `quiet` is gone


def test_resume_with_the_committed_watermark(catalogs):
    schedule = CatalogSchedule(catalogs[0])
    schedule.add(ms("+1h"), catalogs[1])
    proc = Processor(schedule.initial, DictStore(), schedule=schedule)
    proc.resume(ms("+3h"), watermark=ms("+2h55m"))
    assert proc.watermark == ms("+2h55m")
    unscheduled = Processor(Engine(catalogs[0]), DictStore())
    unscheduled.resume(ms("+3h"))
    assert unscheduled.watermark == ms("+2h50m") and unscheduled.applied == 0


def test_idle_advance_and_the_until_watermark_cross_changes(catalogs):
    """Every way the watermark moves applies the changes it reaches: idle advance (live) too."""
    now = [ms("+0") / 1000]
    schedule = CatalogSchedule(catalogs[0])
    schedule.add(ms("+1h"), catalogs[1])
    proc = Processor(schedule.initial, DictStore(), IdleAdvance(30_000, lambda: now[0]), schedule=schedule)
    run(proc, [ev("g1", "c2", "go", "+0")])
    now[0] = ms("+1h20m") / 1000
    made = proc.advance_idle(0)
    assert [(d.kind, d.effective_at) for d in made] == [("RELEASE", ms("+1h"))]
    assert proc.applied == 1


def test_an_erase_moving_the_watermark_crosses_changes_first(catalogs):
    schedule = CatalogSchedule(catalogs[0])
    schedule.add(ms("+1h"), catalogs[1])
    proc = Processor(schedule.initial, DictStore(), schedule=schedule)
    run(proc, [ev("g1", "c2", "go", "+0")])
    made = run(proc, [ev("e1", "c2", "tactful.erase", "+2h")])
    assert [d.kind for d in made] == ["RELEASE"]


def test_without_a_schedule_the_hot_path_check_is_against_never(catalogs):
    proc = Processor(Engine(catalogs[0]), DictStore())
    assert proc._switch_at == NEVER
    run(proc, EVENTS)
    assert proc.applied == 0


def test_a_follower_starts_on_the_schedules_initial_engine(catalogs):
    schedule = CatalogSchedule(catalogs[0])
    with pytest.raises(ValueError, match="initial engine"):
        Processor(Engine(catalogs[0]), DictStore(), schedule=schedule)


def test_state_after_a_change_round_trips_through_bytes(catalogs):
    """Live state goes through the changelog as bytes: nothing a change leaves is lost there."""
    schedule = CatalogSchedule(catalogs[0])
    schedule.add(ms("+1h"), catalogs[1])
    store = DictStore()
    proc = Processor(schedule.initial, store, schedule=schedule)
    run(proc, EVENTS[:4])
    for cid, state in store.data.items():
        assert CustomerState.from_bytes(state.to_bytes()).to_obj() == state.to_obj(), cid


def test_a_goal_type_is_read_for_earlier_goals_only_while_one_can_be_open(tmp_path):
    """Contract 8 + 7.4: a removed topology's goal type `won` stays read until no goal opened before the
    change can be open (stream time at the change + the goal's window), then is ignored again."""
    from streams.engine import Outcome
    from tests.contract.helpers import goal, with_keys

    v1 = load_folder(write_dir(tmp_path / "v1", [with_keys(on("t", "go", [engage("sms")]), goal=goal("won", "2h"))]))
    v2 = load_folder(write_dir(tmp_path / "v2", [on("k", "x", [engage("push")])]))
    schedule = CatalogSchedule(v1)
    schedule.add(ms("+1h"), v2)
    proc = Processor(schedule.initial, DictStore(), schedule=schedule)
    run(proc, [ev("g1", "c1", "go", "+0"), ev("x1", "c2", "x", "+1h10m")])  # the change: stream time +1h10m
    assert proc.process(validate_event(ev("w0", "c3", "won", "+1h20m")))[0] is Outcome.EVALUATED
    run(proc, [ev("x2", "c2", "x", "+3h20m")])  # watermark +3h10m: past +1h10m + 2h
    assert proc.process(validate_event(ev("w1", "c1", "won", "+3h25m")))[0] is Outcome.IGNORED


def test_an_unfollowed_processor_no_longer_holds_a_change_back(catalogs):
    """Live: a revoked partition's processor leaves the schedule; the catalog in force is readable."""
    schedule = CatalogSchedule(catalogs[0])
    proc = Processor(schedule.initial, DictStore(), schedule=schedule)
    run(proc, [ev("a", "c1", "x", "+2h")])
    assert proc.catalog is catalogs[0]
    with pytest.raises(CatalogChangeError):
        schedule.add(ms("+1h"), catalogs[1])
    schedule.unfollow(proc)
    schedule.add(ms("+1h"), catalogs[1])
    assert schedule.earliest() is None
