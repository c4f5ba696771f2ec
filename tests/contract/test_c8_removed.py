"""Contract 8, a removed topology: "its armed deadlines are dropped; its open goals stay open and resolve
as usual; each of its suppressions that ends after T is lifted by a RELEASE decision effective at T
(evidence empty, the removed version, a reason saying the topology was removed, a deterministic id over
topology, version, customer, removed, T, channel, category, status and cause; a suppression made while
the topology was live keeps its status, whatever its mode at T), for every customer, in customer-id
order, then by topology name."
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .helpers import (
    BASE_MS,
    brief,
    engage,
    ev,
    goal,
    iso,
    ms,
    on,
    pick,
    replay,
    status_of,
    suppress,
    topo,
    with_keys,
)

T = "+1h"
AFTER_T = "+1h10m"  # an event here moves the watermark to T


def quiet(name: str = "quiet", channels: tuple[str, ...] = ("sms", "email"), for_: str = "1d", **keys: Any) -> dict:
    """Suppresses `channels` on each `go` event; released by `ok`."""
    doc = on(name, "go", [suppress(list(channels), for_)], release_on={"event": "ok"})
    return with_keys(doc, **keys) if keys else doc


def keep() -> dict[str, Any]:
    """A topology that stays: it engages on sms for each `buy`."""
    return on("keep", "buy", [engage("sms")])


def releases(res: Any) -> list[dict[str, Any]]:
    return pick(res.audit, kind="RELEASE")


def test_8_removed_suppressions_are_released_at_t_with_empty_evidence(topo_dir):
    """8 removed: "each of its suppressions that ends after T is lifted by a RELEASE decision effective
    at T (evidence empty, the removed version, a reason saying the topology was removed ...)"."""
    before = topo_dir(quiet(version=1) | {"version": 3}, keep())
    after = topo_dir(keep())
    events = [ev("g1", "c1", "go", "+0"), ev("z", "c9", "x", AFTER_T), ev("b1", "c1", "buy", "+2h")]
    res = replay(before, events, switches=[(T, after)])
    rel = releases(res)
    assert brief(rel, "topology", "topology_version", "status") == [
        ("RELEASE", "email", "*", iso(T), (), "quiet", 3, "emitted"),
        ("RELEASE", "sms", "*", iso(T), (), "quiet", 3, "emitted"),
    ]
    assert all("removed" in d["reason"] and d["expires_at"] is None for d in rel)
    # Lifted: the engagement after T is no longer blocked.
    assert [d["status"] for d in pick(res.audit, kind="ENGAGE")] == ["emitted"]
    assert res.decisions == sorted(res.decisions, key=lambda d: (d["effective_at"], d["customer_id"]))


def test_8_without_the_change_the_suppression_still_blocks(topo_dir):
    """The control for the test above: with no change, the same engagement is blocked."""
    res = replay(topo_dir(quiet(), keep()), [ev("g1", "c1", "go", "+0"), ev("b1", "c1", "buy", "+2h")])
    assert [d["status"] for d in pick(res.audit, kind="ENGAGE")] == ["blocked"]
    assert not releases(res)


def test_8_only_suppressions_that_end_after_t_are_released(topo_dir):
    """8 removed: "each of its suppressions that ends after T": one that ended at or before T is not."""
    before = topo_dir(quiet(channels=("sms",), for_="1h"))
    events = [
        ev("g1", "c1", "go", "+0"),  # ends at +1h = T: not after T
        ev("g2", "c2", "go", "+1m"),  # ends at +1h1m
        ev("z", "c9", "x", AFTER_T),
    ]
    res = replay(before, events, switches=[(T, topo_dir(keep()))])
    assert [d["customer_id"] for d in releases(res)] == ["c2"]


def test_8_a_removed_topologys_release_on_event_releases_nothing_more(topo_dir):
    """8 removed: once lifted there is nothing left to release: a `release_on` event of the removed
    topology (which no longer exists) makes no decision."""
    before = topo_dir(quiet(channels=("sms",)))
    events = [ev("g1", "c1", "go", "+0"), ev("z", "c9", "x", AFTER_T), ev("ok1", "c1", "ok", "+2h")]
    res = replay(before, events, switches=[(T, topo_dir(keep()))])
    assert [(d["evidence"], d["effective_at"]) for d in releases(res)] == [([], iso(T))]


def test_8_release_ids_are_deterministic_over_their_fields(topo_dir):
    """8 removed: "a deterministic id over topology, version, customer, removed, T, channel, category,
    status and cause": the same run gives the same ids; another T, customer, channel or version another."""
    before = topo_dir(quiet())
    v2 = topo_dir(quiet() | {"version": 2})
    after = topo_dir(keep())
    events = [ev("g1", "c1", "go", "+0"), ev("g2", "c2", "go", "+0"), ev("z", "c9", "x", "+3h")]

    def ids(folder: Path, at: str) -> dict[tuple[str, str], str]:
        return {
            (d["customer_id"], d["channel"]): d["decision_id"]
            for d in releases(replay(folder, events, switches=[(at, after)]))
        }

    first = ids(before, T)
    assert first == ids(before, T)
    assert len(set(first.values())) == 4
    assert set(first.values()).isdisjoint(ids(before, "+2h").values())
    assert set(first.values()).isdisjoint(ids(v2, T).values())
    # Not the id release_on gives the same (channel, category): another cause, another id.
    released = replay(before, [*events[:2], ev("ok1", "c1", "ok", "+30m")])
    assert set(first.values()).isdisjoint(d["decision_id"] for d in releases(released))


def test_8_releases_come_by_customer_id_then_topology_name(topo_dir):
    """8 removed: "for every customer, in customer-id order, then by topology name": the order the
    engine gives them (the live order), before any output sorting."""
    from streams.engine import CatalogSchedule, DictStore, Processor
    from streams.events import validate_event
    from streams.topology import load_folder

    before = load_folder(topo_dir(quiet("zeta", channels=("sms",)), quiet("alpha", channels=("sms",))))
    schedule = CatalogSchedule(before)
    schedule.add(ms(T), load_folder(topo_dir(keep())))
    proc = Processor(schedule.initial, DictStore(), schedule=schedule)
    for i, cid in enumerate(["c3", "c1", "c2"]):
        proc.process(validate_event(ev(f"g{i}", cid, "go", "+0")))
    _, made = proc.process(validate_event(ev("z", "c9", "x", AFTER_T)))
    assert [(d.customer_id, d.topology) for d in made] == [
        ("c1", "alpha"), ("c1", "zeta"), ("c2", "alpha"), ("c2", "zeta"), ("c3", "alpha"), ("c3", "zeta"),
    ]  # fmt: skip
    assert {d.effective_at for d in made} == {BASE_MS + 3_600_000}


def test_8_held_out_and_shadow_suppressions_are_released_with_their_status(topo_dir):
    """8 removed (and 7.3): "A RELEASE of a held-out or shadow suppression (by release_on, or because its
    topology was removed, 8) carries the status and the cause of the suppression it releases"."""
    held = quiet("held", channels=("sms",), holdout="100%")
    shadow = quiet("shade", channels=("sms",), mode="shadow")
    res = replay(topo_dir(held, shadow), [ev("g1", "c1", "go", "+0"), ev("z", "c9", "x", AFTER_T)],
                 switches=[(T, topo_dir(keep()))])  # fmt: skip
    assert status_of(releases(res)) == [
        ("held", "RELEASE", "sms", "held_out", "holdout_topology"),
        ("shade", "RELEASE", "sms", "shadow", "shadow"),
    ]
    assert res.decisions == []  # none of them is emitted


def test_8_a_suppression_made_while_live_keeps_its_status_when_removed_in_shadow(topo_dir):
    """8 removed: "a suppression made while the topology was live keeps its status, whatever its mode at
    T": live, then shadow at +30m, then removed at T: its live suppression is released `emitted`, the
    one it made in shadow `shadow`."""
    live = topo_dir(quiet(channels=("sms",)))
    shadow = topo_dir(quiet(channels=("sms",), mode="shadow") | {"version": 2})
    gone = topo_dir(keep())
    events = [ev("g1", "c1", "go", "+0"), ev("g2", "c1", "go", "+50m"), ev("z", "c9", "x", AFTER_T)]
    res = replay(live, events, switches=[("+30m", shadow), (T, gone)])
    assert status_of(releases(res), "topology_version") == [
        ("quiet", "RELEASE", "sms", "emitted", "", 2),
        ("quiet", "RELEASE", "sms", "shadow", "shadow", 2),
    ]


def test_8_removed_armed_deadlines_are_dropped(topo_dir):
    """8 removed: "its armed deadlines are dropped"."""
    idle = topo(
        "idle", {"absence": {"after": {"event": "cart"}, "missing": {"event": "buy"}, "for": "2h"}}, [engage("sms")]
    )
    events = [ev("k1", "c1", "cart", "+0"), ev("z", "c9", "x", "+5h")]
    assert len(replay(topo_dir(idle), events).decisions) == 1
    assert replay(topo_dir(idle), events, switches=[(T, topo_dir(keep()))]).decisions == []


def test_8_removed_open_goals_resolve_as_usual(topo_dir):
    """8 removed: "its open goals stay open and resolve as usual": reached by a qualifying event after T
    (even if no topology left reads its type), or missed at the window's end."""
    doc = with_keys(on("t", "go", [engage("sms")]), goal=goal("won", "3h"))
    events = [
        ev("g1", "c1", "go", "+0"),
        ev("g2", "c2", "go", "+0"),
        ev("z", "c9", "x", AFTER_T),
        ev("w1", "c1", "won", "+2h"),
        ev("z2", "c9", "x", "+5h"),
    ]
    res = replay(topo_dir(doc), events, switches=[(T, topo_dir(keep()))])
    got = [(g["customer_id"], g["status"], g["effective_at"], g["evidence"]) for g in pick(res.audit, kind="GOAL")]
    assert got == [("c1", "reached", iso("+2h"), ["g1", "w1"]), ("c2", "missed", iso("+3h"), ["g2"])]


def test_8_a_removed_topology_stays_unknown_when_its_events_come(topo_dir):
    """8 removed: after T it matches nothing: a `go` after the change makes no decision."""
    res = replay(topo_dir(quiet(), keep()), [ev("z", "c9", "x", AFTER_T), ev("g1", "c1", "go", "+2h")],
                 switches=[(T, topo_dir(keep()))])  # fmt: skip
    assert res.audit == []
