"""Contract 8, a changed topology: "it keeps the customer state it had: stored events, cooldown and the
memory of matches already fired, caps, suppressions, armed deadlines (which keep their time and fire
under the new definition, or are dropped if it is no longer an absence), open goals. New decisions
carry the new version."

A change at T applies when the watermark (stream time less the default 10m lateness) reaches T, so an
event at T + 10m or later makes it. Each test's docstring quotes the sentence it covers.
"""

from __future__ import annotations

from typing import Any

import pytest

from .helpers import E, brief, engage, ev, iso, on, pick, replay, suppress, topo

ABC = {"sequence": [{"event": "a"}, {"event": "b"}, {"event": "c"}]}


def absence(missing: str = "buy", for_: str = "1h") -> dict[str, Any]:
    return {"absence": {"after": {"event": "cart", "as": "cart"}, "missing": {"event": missing}, "for": for_}}


def rows(res: Any, *extra: str) -> list[tuple[Any, ...]]:
    return brief(res.decisions, "topology_version", *extra)


def test_8_a_journey_half_way_through_v1_completes_under_v2(topo_dir):
    """8 changed: "it keeps the customer state it had: stored events ... New decisions carry the new
    version": a customer half-way through v1's sequence completes it under v2, with v2's actions."""
    v1 = topo_dir(topo("abc", ABC, [engage("sms")]))
    v2 = topo_dir(topo("abc", ABC, [engage("email")], version=2))
    events = [ev("a1", "c1", "a", "+0"), ev("b1", "c1", "b", "+10m"), ev("c1", "c1", "c", "+2h")]
    res = replay(v1, events, switches=[("+30m", v2)])
    assert rows(res) == [(*E("email", "+2h", ["a1", "b1", "c1"]), 2)]
    assert res.summary["catalog_changes"] == 1


def test_8_a_change_without_a_new_version_still_changes_what_it_does(topo_dir):
    """8 changed: "(any key, with or without a new version)": the same version, another action."""
    v1 = topo_dir(on("t", "go", [engage("sms", "old")]))
    v2 = topo_dir(on("t", "go", [engage("sms", "new")]))
    events = [ev("g1", "c1", "go", "+0"), ev("g2", "c1", "go", "+1h")]
    res = replay(v1, events, switches=[("+30m", v2)])
    assert [(d["action"], d["topology_version"]) for d in res.decisions] == [("old", 1), ("new", 1)]


def test_8_a_changed_step_uses_the_stored_events_with_the_new_rule(topo_dir):
    """8 changed: stored events are kept and the new definition matches over them: v2 adds a `where`
    on its first step, and the stored events that fail it no longer fill that step."""
    v1 = topo_dir(
        topo("ab", {"sequence": [{"event": "a", "where": {"k": ["x", "y"]}}, {"event": "b"}]}, [engage("sms")])
    )
    v2 = topo_dir(
        topo("ab", {"sequence": [{"event": "a", "where": {"k": "x"}}, {"event": "b"}]}, [engage("sms")], version=2)
    )
    events = [
        ev("ax", "c1", "a", "+0", k="x"),
        ev("ay", "c1", "a", "+1m", k="y"),  # the latest under v1; v2 refuses it
        ev("b1", "c1", "b", "+1h"),
    ]
    res = replay(v1, events, switches=[("+20m", v2)])
    assert rows(res) == [(*E("sms", "+1h", ["ax", "b1"]), 2)]
    unchanged = replay(v1, events)
    assert rows(unchanged) == [(*E("sms", "+1h", ["ay", "b1"]), 1)]


@pytest.mark.parametrize(
    ("v2_cooldown", "fires_again"),
    [("1d", False), ("1h", True)],
    ids=["kept-fire-time-holds", "new-cooldown-length-applies"],
)
def test_8_cooldown_is_kept_and_the_new_length_applies(topo_dir, v2_cooldown, fires_again):
    """8 changed: "it keeps ... cooldown": the fire time made under v1 holds v2 back for v2's cooldown."""
    v1 = topo_dir(on("t", "go", [engage("sms")], cooldown="1d"))
    v2 = topo_dir(on("t", "go", [engage("sms")], cooldown=v2_cooldown, version=2))
    events = [ev("g1", "c1", "go", "+0"), ev("g2", "c1", "go", "+2h")]
    res = replay(v1, events, switches=[("+30m", v2)])
    expected = [(*E("sms", "+0", ["g1"]), 1)] + ([(*E("sms", "+2h", ["g2"]), 2)] if fires_again else [])
    assert rows(res) == expected
    assert res.summary["matches_held_by_cooldown"] == (0 if fires_again else 1)


def test_8_the_memory_of_fired_matches_belongs_to_the_name(topo_dir):
    """8: "The memory of matches already fired belongs to the topology's name, not its version: a new
    version never fires again on evidence that already fired." An out-of-order `a` after the change
    could complete b1 again; under the same name it does not, under a new name it does."""
    ab = {"sequence": [{"event": "a"}, {"event": "b"}]}
    v1 = topo_dir(topo("ab", ab, [engage("sms")]))
    v2 = topo_dir(topo("ab", ab, [engage("sms")], version=2))
    renamed = topo_dir(topo("ab2", ab, [engage("sms")]))
    events = [
        ev("a1", "c1", "a", "+0"),
        ev("b1", "c1", "b", "+5m"),  # fires v1 with [a1, b1]
        ev("z1", "c1", "a", "+11m"),  # watermark +1m: the change at +1m applies
        ev("a0", "c1", "a", "+2m"),  # on time; a later filling for b1 than a1
    ]
    same = replay(v1, events, switches=[("+1m", v2)])
    assert rows(same) == [(*E("sms", "+5m", ["a1", "b1"]), 1)]
    other = replay(v1, events, switches=[("+1m", renamed)])
    assert [(d["topology"], d["evidence"]) for d in other.decisions] == [("ab", ["a1", "b1"]), ("ab2", ["a0", "b1"])]


def test_8_suppressions_made_under_v1_stay_in_force_under_v2(topo_dir):
    """8 changed: "it keeps ... suppressions": v1's suppression blocks v2's engagement."""
    v1 = topo_dir(on("t", "go", [suppress(["sms"], "1d")]))
    v2 = topo_dir(on("t", "go", [engage("sms")], version=2))
    events = [ev("g1", "c1", "go", "+0"), ev("g2", "c1", "go", "+1h")]
    res = replay(v1, events, switches=[("+30m", v2)])
    assert res.decisions == pick(res.decisions, kind="SUPPRESS")
    blocked = pick(res.audit, kind="ENGAGE")
    assert [(d["status"], d["topology_version"]) for d in blocked] == [("blocked", 2)]
    assert blocked[0]["cause"] == f"suppressed_by {res.decisions[0]['decision_id']}"
    assert not pick(res.audit, kind="RELEASE")


def test_8_an_armed_deadline_keeps_its_time_and_fires_under_the_new_definition(topo_dir):
    """8 changed: "armed deadlines (which keep their time and fire under the new definition ...)":
    v1 waits 1h, v2 2h; the deadline armed under v1 fires at +1h with v2's action and version, and a
    v2 deadline armed after the change waits 2h."""
    v1 = topo_dir(topo("idle", absence("buy", "1h"), [engage("sms")]))
    v2 = topo_dir(topo("idle", absence("buy", "2h"), [engage("email")], version=2))
    events = [ev("k1", "c1", "cart", "+0"), ev("k2", "c2", "cart", "+40m"), ev("z1", "c3", "buy", "+5h")]
    res = replay(v1, events, switches=[("+30m", v2)])
    assert rows(res) == [(*E("email", "+1h", ["k1"]), 2), (*E("email", "+2h40m", ["k2"]), 2)]


def test_8_a_kept_deadline_is_judged_by_the_new_missing_rule(topo_dir):
    """8 changed: the deadline "fire[s] under the new definition": its `missing` event, over the window
    up to the kept deadline. v1 waits for `buy`, v2 for `pay`: a `buy` no longer prevents the match."""
    v1 = topo_dir(topo("idle", absence("buy"), [engage("sms")]))
    v2 = topo_dir(topo("idle", absence("pay"), [engage("sms")], version=2))
    events = [ev("k1", "c1", "cart", "+0"), ev("b1", "c1", "buy", "+20m"), ev("z1", "c2", "x", "+3h")]
    assert rows(replay(v1, events)) == []
    res = replay(v1, events, switches=[("+10m", v2)])
    assert rows(res) == [(*E("sms", "+1h", ["k1"]), 2)]


def test_8_a_deadline_is_dropped_when_the_topology_is_no_longer_an_absence(topo_dir):
    """8 changed: armed deadlines "are dropped if it is no longer an absence"."""
    v1 = topo_dir(topo("idle", absence(), [engage("sms")]))
    v2 = topo_dir(topo("idle", {"sequence": [{"event": "cart"}, {"event": "buy"}]}, [engage("sms")], version=2))
    back = topo_dir(topo("idle", absence(), [engage("sms")], version=3))
    events = [ev("k1", "c1", "cart", "+0"), ev("z1", "c2", "x", "+3h")]
    assert rows(replay(v1, events, switches=[("+30m", v2)])) == []
    # Dropped, not merely skipped: an absence again before the deadline does not bring it back.
    assert rows(replay(v1, events, switches=[("+30m", v2), ("+40m", back)])) == []
    # Without the detour through v2 the deadline fires under v3.
    assert rows(replay(v1, events, switches=[("+40m", back)])) == [(*E("sms", "+1h", ["k1"]), 3)]


def test_8_the_until_watermark_applies_a_change_it_reaches(topo_dir):
    """8 + 6: "A change the final watermark never reaches is never applied": --until moves the
    watermark, and a change it reaches is applied (a deadline after it fires under the new catalog)."""
    v1 = topo_dir(topo("idle", absence(), [engage("sms")]))
    v2 = topo_dir(topo("idle", absence(), [engage("email")], version=2))
    events = [ev("k1", "c1", "cart", "+0")]
    reached = replay(v1, events, until=iso("+2h"), switches=[("+30m", v2)])
    assert rows(reached) == [(*E("email", "+1h", ["k1"]), 2)]
    never = replay(v1, events, until=iso("+2h"), switches=[("+3h", v2)])
    assert rows(never) == [(*E("sms", "+1h", ["k1"]), 1)]
    assert never.summary["catalog_changes"] == 0


def test_8_a_kept_deadline_looks_for_the_missing_event_only_up_to_its_own_time(topo_dir):
    """8 changed: the deadline keeps its time (+1h), so the window it judges is (t0, +1h], not v2's
    (t0, +2h]: a `buy` at +1h5m, on time and stored before the deadline came due, does not prevent it."""
    v1 = topo_dir(topo("idle", absence("buy", "1h"), [engage("sms")]))
    v2 = topo_dir(topo("idle", absence("buy", "2h"), [engage("sms")], version=2))
    events = [ev("k1", "c1", "cart", "+0"), ev("b1", "c1", "buy", "+1h5m"), ev("z1", "c2", "x", "+3h")]
    res = replay(v1, events, switches=[("+30m", v2)])
    assert rows(res) == [(*E("sms", "+1h", ["k1"]), 2)]


def test_8_a_kept_deadline_whose_after_event_no_longer_qualifies_is_dropped(topo_dir):
    """8 changed (docs/contract-notes.md): "fire under the new definition": v2 arms only on web carts, so
    the deadline v1 armed for an app cart is dropped when it comes due; a web cart's fires."""
    web_only = {
        "absence": {"after": {"event": "cart", "where": {"channel": "web"}}, "missing": {"event": "buy"}, "for": "1h"}
    }
    v1 = topo_dir(topo("idle", absence(), [engage("sms")]))
    v2 = topo_dir(topo("idle", web_only, [engage("sms")], version=2))
    events = [ev("k1", "c1", "cart", "+0", "app"), ev("k2", "c2", "cart", "+1m", "web"), ev("z1", "c3", "x", "+3h")]
    res = replay(v1, events, switches=[("+30m", v2)])
    assert rows(res) == [(*E("sms", "+1h1m", ["k2"]), 2)]


def test_8_state_pruned_under_the_old_catalog_keeps_what_a_later_catalog_needs(topo_dir):
    """8 changed: "it keeps ... cooldown": the old catalog's own pruning (retention 1d, no cooldown) must
    not drop the fire time that v2's 10d cooldown reads; c1 is touched at +2d, when v1 alone would prune."""
    policies = {"retention": "1d"}
    probe = on("probe", "x", [engage("push")], where={"k": "never"})
    v1 = topo_dir(on("t", "go", [engage("sms")]), probe, policies=policies)
    v2 = topo_dir(on("t", "go", [engage("sms")], cooldown="10d", version=2), probe, policies=policies)
    events = [ev("g1", "c1", "go", "+0"), ev("x1", "c1", "x", "+2d"), ev("g2", "c1", "go", "+4d")]
    res = replay(v1, events, switches=[("+3d", v2)])
    assert [d["evidence"] for d in res.decisions] == [["g1"]]
    assert res.summary["matches_held_by_cooldown"] == 1
