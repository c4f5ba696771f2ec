"""Contract 8 with 7.1 and 7.4: shadow never in force and the shadow -> live flip by a catalog change
("Flipping a topology from shadow to live is a deploy like any other", issue 10); "A goal keeps the
definition it was opened with, whatever happens to its topology later (8)."
"""

from __future__ import annotations

from typing import Any

from .helpers import engage, ev, goal, iso, on, pick, replay, status_of, suppress, with_keys

T = "+1h"


def quiet(mode: str, version: int = 1) -> dict[str, Any]:
    """Suppresses sms on `go`, released by `ok`."""
    doc = on("quiet", "go", [suppress(["sms"], "1d")], release_on={"event": "ok"}, version=version)
    return with_keys(doc, mode=mode)


SELL = on("sell", "buy", [engage("sms")])


def engagements(res: Any) -> list[tuple[list[str], str]]:
    return [(d["evidence"], d["status"]) for d in pick(res.audit, kind="ENGAGE")]


def test_8_shadow_suppressions_are_never_in_force_even_after_the_flip_to_live(topo_dir):
    """7.1 + 8: a shadow suppression blocks nothing before T, nor after its topology turns live at T; the
    suppressions it makes live from T on block."""
    events = [
        ev("g1", "c1", "go", "+0"),  # shadow suppression
        ev("b1", "c1", "buy", "+30m"),
        ev("b2", "c1", "buy", "+2h"),  # after T: the shadow suppression still blocks nothing
        ev("g2", "c1", "go", "+3h"),  # live now: in force
        ev("b3", "c1", "buy", "+4h"),
    ]
    res = replay(topo_dir(quiet("shadow"), SELL), events, switches=[(T, topo_dir(quiet("live", 2), SELL))])
    assert engagements(res) == [(["b1"], "emitted"), (["b2"], "emitted"), (["b3"], "blocked")]
    assert [(d["evidence"], d["status"], d["topology_version"]) for d in pick(res.audit, kind="SUPPRESS")] == [
        (["g1"], "shadow", 1),
        (["g2"], "emitted", 2),
    ]


def test_8_after_the_flip_to_live_release_on_lifts_the_shadow_suppressions_too(topo_dir):
    """7.3 + 8: a live topology's `release_on` releases its shadow suppressions made before the flip, with
    their status and cause."""
    events = [ev("g1", "c1", "go", "+0"), ev("g2", "c1", "go", "+2h"), ev("ok", "c1", "ok", "+3h")]
    res = replay(topo_dir(quiet("shadow"), SELL), events, switches=[(T, topo_dir(quiet("live", 2), SELL))])
    assert status_of(pick(res.audit, kind="RELEASE"), "topology_version") == [
        ("quiet", "RELEASE", "sms", "emitted", "", 2),
        ("quiet", "RELEASE", "sms", "shadow", "shadow", 2),
    ]


def test_8_live_to_shadow_keeps_the_live_suppressions_in_force(topo_dir):
    """7.3 + 8: "suppressions in force that it made before it was switched to shadow stay until they end or
    it is switched back to live": its shadow `release_on` does not lift them."""
    events = [
        ev("g1", "c1", "go", "+0"),  # in force for 1d
        ev("ok", "c1", "ok", "+2h"),  # shadow now: releases nothing in force
        ev("b1", "c1", "buy", "+3h"),
    ]
    res = replay(topo_dir(quiet("live"), SELL), events, switches=[(T, topo_dir(quiet("shadow", 2), SELL))])
    assert engagements(res) == [(["b1"], "blocked")]
    assert pick(res.audit, kind="RELEASE") == []


def test_8_a_goal_keeps_the_definition_it_was_opened_with(topo_dir):
    """7.4 + 8: "A goal keeps the definition it was opened with": v1's goal is `won` within 2h; v2's is
    `paid` within 1d. The goal opened under v1 is reached by `won`, not `paid`, with v1's version; the
    goal of a v2 match waits for `paid`."""
    v1 = with_keys(on("t", "go", [engage("sms")]), goal=goal("won", "2h"))
    v2 = with_keys(on("t", "go", [engage("sms")], version=2), goal=goal("paid", "1d"))
    events = [
        ev("g1", "c1", "go", "+0"),
        ev("p1", "c1", "paid", "+1h30m"),  # after T: not v1's goal
        ev("w1", "c1", "won", "+1h40m"),  # no topology of v2 reads `won`: it still reaches v1's goal
        ev("g2", "c2", "go", "+1h45m"),
        ev("w2", "c2", "won", "+1h50m"),
        ev("p2", "c2", "paid", "+1h55m"),
    ]
    res = replay(topo_dir(v1), events, switches=[(T, topo_dir(v2))])
    got = [
        (g["customer_id"], g["topology_version"], g["evidence"], g["effective_at"])
        for g in pick(res.audit, kind="GOAL")
    ]
    assert got == [("c1", 1, ["g1", "w1"], iso("+1h40m")), ("c2", 2, ["g2", "p2"], iso("+1h55m"))]


def test_8_a_goal_keeps_its_where_even_on_attributes_the_new_catalog_does_not_keep(topo_dir):
    """7.4 + 8 + 7.6: the goal opened under v1 tests its own `where` (on `plan`) against the arriving
    event, although v2 no longer stores that attribute."""
    v1 = with_keys(on("t", "go", [engage("sms")]), goal=goal("won", "2h", where={"plan": "gold"}))
    v2 = with_keys(on("t", "go", [engage("sms")], version=2), goal=goal("won", "2h"))
    events = [
        ev("g1", "c1", "go", "+0"),
        ev("w1", "c1", "won", "+1h20m", plan="basic"),
        ev("w2", "c1", "won", "+1h30m", plan="gold"),
    ]
    res = replay(topo_dir(v1), events, switches=[(T, topo_dir(v2))])
    assert [(g["status"], g["evidence"]) for g in pick(res.audit, kind="GOAL")] == [("reached", ["g1", "w2"])]


def test_8_a_goal_of_an_earlier_definition_is_missed_at_its_own_window_end(topo_dir):
    """7.4 + 8: the window's end is the one it was opened with (2h), not v2's (1d)."""
    v1 = with_keys(on("t", "go", [engage("sms")]), goal=goal("won", "2h"))
    v2 = with_keys(on("t", "go", [engage("sms")], version=2), goal=goal("won", "1d"))
    res = replay(topo_dir(v1), [ev("g1", "c1", "go", "+0"), ev("z", "c9", "x", "+5h")], switches=[(T, topo_dir(v2))])
    assert [(g["status"], g["effective_at"]) for g in pick(res.audit, kind="GOAL")] == [("missed", iso("+2h"))]
