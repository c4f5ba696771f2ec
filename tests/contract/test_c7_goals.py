"""Contract 7.4 (goals), 7.5 (outcomes reported by channels) and 7.6 (what is stored), through replay.

Each test's docstring quotes the sentence it covers.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from .helpers import engage, ev, goal, iso, on, pick, replay, suppress, topo, with_keys


def ab(within: str = "1h", **keys: Any) -> dict[str, Any]:
    """a then b (the match is made by b); goal: a `g` event within `within`."""
    doc = topo("ab", {"sequence": [{"event": "a"}, {"event": "b"}]}, [engage("sms")])
    return with_keys(doc, goal=goal("g", within), **keys)


def goals(res: Any) -> list[tuple[Any, ...]]:
    """(status, effective_at, evidence, cause) of each GOAL record."""
    return [(g["status"], g["effective_at"], g["evidence"], g["cause"]) for g in pick(res.audit, kind="GOAL")]


MATCH = [ev("a1", "c1", "a", "+0"), ev("b1", "c1", "b", "+1m")]


# ----------------------------------------------------------------- reached


def test_7_4_reached_by_a_qualifying_event_evaluated_after_the_match(topo_dir):
    """7.4: "reached by a qualifying event ... the first such event evaluated after it": one GOAL record,
    status reached, effective at that event's time, evidence the match's evidence followed by it."""
    res = replay(topo_dir(ab()), [*MATCH, ev("g1", "c1", "g", "+30m"), ev("g2", "c1", "g", "+40m")])
    assert goals(res) == [("reached", iso("+30m"), ["a1", "b1", "g1"], "treated")]


def test_7_4_the_first_evaluated_wins_over_an_earlier_one_arriving_later(topo_dir):
    """7.4: after the match fires, "the first such event evaluated after it", not the earliest in time."""
    events = [*MATCH, ev("g2", "c1", "g", "+20m"), ev("g1", "c1", "g", "+12m")]
    res = replay(topo_dir(ab()), events)
    assert res.rejected == []
    assert goals(res) == [("reached", iso("+20m"), ["a1", "b1", "g2"], "treated")]


def test_7_4_reached_by_the_earliest_stored_event_when_the_match_fires_out_of_order(topo_dir):
    """7.4: "the earliest such event already stored when the match fires (in the order of 2)": goal events
    that arrived before the match's last event, in any order, and the match found late."""
    events = [
        ev("a1", "c1", "a", "+0"),
        ev("g2", "c1", "g", "+8m"),
        ev("g1", "c1", "g", "+6m"),
        ev("b1", "c1", "b", "+1m"),  # out of order, not late: completes the match at +1m
    ]
    res = replay(topo_dir(ab()), events)
    assert res.rejected == []
    assert goals(res) == [("reached", iso("+6m"), ["a1", "b1", "g1"], "treated")]


def test_7_4_equal_times_are_ordered_by_arrival(topo_dir):
    """7.4 + 2: the earliest stored event "in the order of 2": at equal times, the first to arrive."""
    events = [
        ev("a1", "c1", "a", "+0"),
        ev("gx", "c1", "g", "+5m"),
        ev("gy", "c1", "g", "+5m"),
        ev("b1", "c1", "b", "+1m"),
    ]
    res = replay(topo_dir(ab()), events)
    assert [g[2][-1] for g in goals(res)] == ["gx"]


@pytest.mark.parametrize(
    ("at", "reached"),
    [("+1m", False), ("+1m1ms", True), ("+1h1m", True), ("+1h1m1ms", False)],
    ids=["at-t", "just-after-t", "at-t-plus-within", "after-window"],
)
def test_7_4_the_window_is_t_exclusive_to_t_plus_within_inclusive(topo_dir, at, reached):
    """7.4: "with occurred_at in (t, t + within]"."""
    events = [ev("g0", "c1", "g", at), *MATCH] if at == "+1m" else [*MATCH, ev("g1", "c1", "g", at)]
    res = replay(topo_dir(ab("1h")), events, until=iso("+3h"))
    assert [g[0] for g in goals(res)] == (["reached"] if reached else ["missed"])


def test_7_4_goal_where_must_hold(topo_dir):
    """7.4: "a qualifying event (the goal's event and where)"."""
    doc = with_keys(on("t", "go", [engage("sms")]), goal=goal("buy", "1h", where={"category": "phone"}))
    events = [
        ev("g1", "c1", "go", "+0"),
        ev("b1", "c1", "buy", "+10m", category="tv"),
        ev("b2", "c1", "buy", "+20m", category="phone"),
    ]
    res = replay(topo_dir(doc), events)
    assert [(g[0], g[2]) for g in goals(res)] == [("reached", ["g1", "b2"])]


def test_7_4_another_customers_event_does_not_reach_the_goal(topo_dir):
    """7.4: "a qualifying event ... of the customer"."""
    res = replay(topo_dir(ab()), [*MATCH, ev("g1", "c2", "g", "+10m")], until=iso("+2h"))
    assert [g[0] for g in goals(res)] == ["missed"]


# ------------------------------------------------------------------ missed


def test_7_4_missed_when_the_window_end_becomes_due(topo_dir):
    """7.4: "When the window's end t + within becomes due as an absence deadline would (2), with no such
    event, it writes one GOAL record, status missed, effective at t + within, evidence the match's evidence"."""
    res = replay(topo_dir(ab("1h")), [*MATCH, ev("z1", "c1", "b", "+2h")])
    assert goals(res)[0] == ("missed", iso("+1h1m"), ["a1", "b1"], "treated")


def test_7_4_missed_fires_when_the_watermark_passes_like_a_deadline(topo_dir):
    """7.4 + 2: the window's end fires when the watermark (stream time less lateness) reaches it, and
    a qualifying event still on time before then reaches the goal."""
    d = topo_dir(ab("1h"))
    # stream time +1h5m: watermark +55m, window end +1h1m not yet due; g at +1h is on time
    reached = replay(d, [*MATCH, ev("o1", "c9", "x", "+1h5m"), ev("g1", "c1", "g", "+1h")], until=iso("+1h"))
    assert [g[0] for g in goals(reached)] == ["reached"]
    # stream time +1h11m: watermark +1h1m, the window end is due: missed, and g at +1h is late
    missed = replay(d, [*MATCH, ev("o1", "c9", "x", "+1h11m"), ev("g1", "c1", "g", "+1h")])
    assert [g[0] for g in goals(missed)] == ["missed"]
    assert missed.rejected == [(4, "late")]


def test_7_4_goals_still_open_after_the_final_watermark_give_no_record(topo_dir):
    """7.4: "In replay, goals whose window is still open after the final watermark give no record"."""
    res = replay(topo_dir(ab("1d")), MATCH, until=iso("+1d"))
    assert goals(res) == []
    assert [g[0] for g in goals(replay(topo_dir(ab("1d")), MATCH, until=iso("+1d1m")))] == ["missed"]


def test_7_4_a_goal_for_an_absence_match_starts_at_its_deadline(topo_dir):
    """7.4 + 3.2: t is the match's effective time; for absence, the deadline."""
    doc = topo(
        "left",
        {"absence": {"after": {"event": "cart"}, "missing": {"event": "buy"}, "for": "1h"}},
        [engage("email", "remind")],
    )
    doc = with_keys(doc, goal=goal("buy", "1d"))
    events = [ev("c1", "c1", "cart", "+0"), ev("x1", "c1", "other", "+2h"), ev("b1", "c1", "buy", "+3h")]
    res = replay(topo_dir(doc), events)
    assert goals(res) == [("reached", iso("+3h"), ["c1", "b1"], "treated")]


# ------------------------------------------------------- tracked for every match


def test_7_4_tracked_even_when_every_decision_was_blocked_outranked_or_skipped(topo_dir):
    """7.4: "tracked for every fired match, in every arm, even when all of the match's decisions were
    blocked, outranked or skipped"."""
    d = topo_dir(
        on("hush", "go", [suppress(["sms"], "7d")], priority=99),
        on("rival", "go", [engage("push", "rival")], priority=90),
        with_keys(
            on("t", "go", [engage("sms", "x"), engage("push", "y"), engage("email", "{e.sku}")], priority=10),
            goal=goal("buy", "1h"),
        ),
    )
    res = replay(d, [ev("g1", "c1", "go", "+0"), ev("b1", "c1", "buy", "+5m")])
    assert sorted(a["status"] for a in pick(res.audit, topology="t", kind="ENGAGE")) == [
        "blocked",
        "outranked",
        "skipped",
    ]
    assert [(g[0], g[3]) for g in goals(res)] == [("reached", "treated")]


def test_7_4_a_match_held_back_by_cooldown_has_no_goal(topo_dir):
    """7.4: goals are tracked for fired matches; a match held back by cooldown did not fire."""
    doc = with_keys(on("t", "go", [engage("sms")], cooldown="1d"), goal=goal("buy", "1h"))
    res = replay(topo_dir(doc), [ev("g1", "c1", "go", "+0"), ev("g2", "c1", "go", "+10m")], until=iso("+3h"))
    assert [g[2] for g in goals(res)] == [["g1"]]


def test_7_4_one_event_reaches_every_open_goal_it_qualifies_for(topo_dir):
    """7.4: each fired match has its goal; one qualifying event can reach several."""
    doc = with_keys(on("t", "go", [engage("sms")]), goal=goal("buy", "1h"))
    other = with_keys(on("u", "go", [engage("email")]), goal=goal("buy", "2h"))
    res = replay(
        topo_dir(doc, other), [ev("g1", "c1", "go", "+0"), ev("g2", "c1", "go", "+5m"), ev("b1", "c1", "buy", "+10m")]
    )
    assert sorted((g["topology"], tuple(g["evidence"])) for g in pick(res.audit, kind="GOAL")) == [
        ("t", ("g1", "b1")),
        ("t", ("g2", "b1")),
        ("u", ("g1", "b1")),
        ("u", ("g2", "b1")),
    ]


# ---------------------------------------------------------------- the record


def test_7_4_the_goal_record(topo_dir):
    """7.4: "kind GOAL, the topology and the version of the match, null channel, action, category,
    expires_at and not_before, the match's arm ... as its cause"; "GOAL records go to the audit output
    only, never to a channel"."""
    res = replay(topo_dir(with_keys(ab(), version=3)), [*MATCH, ev("g1", "c1", "g", "+2m")])
    [g] = pick(res.audit, kind="GOAL")
    assert {k: g[k] for k in ("kind", "channel", "action", "category", "expires_at", "not_before")} == {
        "kind": "GOAL",
        "channel": None,
        "action": None,
        "category": None,
        "expires_at": None,
        "not_before": None,
    }
    assert (g["topology"], g["topology_version"], g["customer_id"], g["cause"]) == ("ab", 3, "c1", "treated")
    assert g["reason"].strip()
    assert pick(res.decisions, kind="GOAL") == []
    assert res.summary["decisions"]["GOAL"] == {"reached": 1}


# the id of the GOAL record of ab v1 for c1 with evidence a1, b1: pinned, so it never drifts
GOAL_ID = "4d126f58668a5db3d15ddad8c57bf01b"


def test_7_4_goal_ids_are_deterministic_over_topology_version_customer_evidence(topo_dir):
    """7.4: "a deterministic id (topology, version, customer, the match's evidence, goal)": the same
    whether reached or missed and by which event, different for a different version, customer or evidence."""
    d = topo_dir(ab())
    reached = pick(replay(d, [*MATCH, ev("g1", "c1", "g", "+2m")]).audit, kind="GOAL")
    reached2 = pick(replay(d, [*MATCH, ev("g9", "c1", "g", "+9m")]).audit, kind="GOAL")
    missed = pick(replay(d, MATCH, until=iso("+2h")).audit, kind="GOAL")
    ids = {g["decision_id"] for g in reached + reached2 + missed}
    assert ids == {GOAL_ID}
    others = [
        replay(topo_dir(with_keys(ab(), version=2)), MATCH, until=iso("+2h")),
        replay(d, [ev("a1", "c2", "a", "+0"), ev("b1", "c2", "b", "+1m")], until=iso("+2h")),
        replay(d, [ev("a2", "c1", "a", "+0"), ev("b1", "c1", "b", "+1m")], until=iso("+2h")),
    ]
    other_ids = {g["decision_id"] for r in others for g in pick(r.audit, kind="GOAL")}
    assert len(other_ids) == 3 and GOAL_ID not in other_ids
    # and never the id of one of the match's decisions
    assert GOAL_ID not in {a["decision_id"] for a in replay(d, MATCH).audit if a["kind"] != "GOAL"}


def test_7_4_goal_records_sort_with_the_other_audit_records_by_section_6s_key(topo_dir):
    """7.4: "in the audit output they sort with the other non-emitted records by the key of section 6"."""
    d = topo_dir(ab("1h"), with_keys(on("z", "b", [engage("email")]), goal=goal("g", "30m")))
    events = [*MATCH, ev("a2", "c0", "a", "+0"), ev("b2", "c0", "b", "+1m"), ev("g1", "c1", "g", "+10m")]
    audit = replay(d, events, until=iso("+3h")).audit
    keys = [(a["effective_at"], a["customer_id"], a["topology"], a["kind"], a["channel"] or "") for a in audit]
    assert keys == sorted(keys)
    assert {a["kind"] for a in audit} == {"ENGAGE", "GOAL"}


def test_7_4_an_erase_drops_open_goals_with_no_record(topo_dir):
    """9 + 7.4: an erase deletes "open goals (with no GOAL record)"."""
    res = replay(topo_dir(ab("1h")), [*MATCH, ev("x1", "c1", "tactful.erase", "+5m")], until=iso("+3h"))
    assert goals(res) == []


def test_7_4_replay_writes_goal_records_with_audit_only(topo_dir, tmp_path: Path):
    """6 + 7.4: `replay --audit` writes GOAL records; without `--audit` they are not written."""
    from streams.cli import main

    events = tmp_path / "e.jsonl"
    events.write_text("\n".join(json.dumps(e) for e in [*MATCH, ev("g1", "c1", "g", "+2m")]) + "\n")
    d = topo_dir(ab())
    lines = {}
    for audit in (False, True):
        out = tmp_path / f"out-{audit}.jsonl"
        args = ["replay", "--topologies", str(d), "--events", str(events), "--out", str(out), "--no-progress"]
        res = CliRunner().invoke(main, args + (["--audit"] if audit else []))
        assert res.exit_code == 0, res.output
        lines[audit] = [json.loads(x) for x in out.read_text().splitlines()]
    assert [x["kind"] for x in lines[False]] == ["ENGAGE"]
    assert [x["kind"] for x in lines[True]] == ["ENGAGE", "GOAL"]
    assert lines[True][1]["channel"] is None and lines[True][1]["status"] == "reached"


# -------------------------------------------------------------- 7.5 outcomes


def test_7_5_a_complaint_about_a_message_suppresses_that_channel(topo_dir):
    """7.5: "Topologies may read them like any other event (for example: a complaint about a message
    suppresses that channel)", with the attribute decision_id readable in `where` and templates."""
    d = topo_dir(
        on("promo", "go", [engage("email", "promo")]),
        on(
            "pause",
            "decision.complained",
            [suppress(["email"], "30d", category="{c.decision_id}")],
            where={"channel": "email"},
            as_="c",
        ),
    )
    first = replay(d, [ev("g1", "c1", "go", "+0")])
    [promo] = first.decisions
    complaint = ev("k1", "c1", "decision.complained", "+1h", "email", decision_id=promo["decision_id"])
    res = replay(d, [ev("g1", "c1", "go", "+0"), complaint, ev("g2", "c1", "go", "+2h")])
    assert res.rejected == []
    [sup] = pick(res.decisions, kind="SUPPRESS")
    assert sup["category"] == promo["decision_id"] and sup["evidence"] == ["k1"]


@pytest.mark.parametrize(
    "outcome",
    ["delivered", "opened", "clicked", "converted", "dismissed", "complained", "unsubscribed", "failed"],
)
def test_7_5_outcome_types_are_ordinary_events(topo_dir, outcome):
    """7.5: the eight `decision.*` outcome types, with the attribute `decision_id`, are ordinary events."""
    doc = on("t", f"decision.{outcome}", [engage("sms", "{o.decision_id}")], as_="o", where={"decision_id": "d1"})
    res = replay(topo_dir(doc), [ev("o1", "c1", f"decision.{outcome}", "+0", "sms", decision_id="d1")])
    assert [x["action"] for x in res.decisions] == ["d1"]


def test_7_5_an_outcome_can_be_a_goal(topo_dir):
    """7.4 + 7.5: a goal may be an outcome, e.g. the message was clicked."""
    doc = with_keys(on("t", "go", [engage("email")]), goal=goal("decision.clicked", "1d"))
    res = replay(topo_dir(doc), [ev("g1", "c1", "go", "+0"), ev("o1", "c1", "decision.clicked", "+1h", "email")])
    assert [g[0] for g in goals(res)] == ["reached"]


# ----------------------------------------------------------------- 7.6 stored


def test_7_6_an_event_only_a_goal_reads_is_stored(topo_dir):
    """7.6: "An event is stored only if the catalog ... reads its type (in ... goal)": a goal-only type
    arriving before the match reaches its goal, and a repeat of it is a duplicate."""
    events = [
        ev("a1", "c1", "a", "+0"),
        ev("g1", "c1", "g", "+5m"),
        ev("g1", "c1", "g", "+5m"),
        ev("b1", "c1", "b", "+1m"),
    ]
    res = replay(topo_dir(ab()), events)
    assert [g[2] for g in goals(res)] == [["a1", "b1", "g1"]]
    assert res.summary["duplicates"] == 1


def test_7_6_only_attributes_the_catalog_reads_are_stored_and_channel_is_kept(topo_dir):
    """7.6: "with only the attributes that catalog reads (where keys, template attributes, the quiet
    hours' time-zone attribute); its channel is always kept" (goal `where` keys are read too)."""
    from streams.engine import DictStore, Engine, Processor
    from streams.topology import load_folder

    doc = with_keys(
        on("t", "go", [engage("sms", "{e.sku}")], where={"tier": "gold"}),
        goal=goal("buy", "1d", where={"category": "phone"}),
    )
    quiet = {"quiet_hours": {"from": "21:00", "to": "08:00", "channels": ["sms"], "timezone_attribute": "zone"}}
    catalog = load_folder(topo_dir(doc, policies=quiet))
    store = DictStore()
    proc = Processor(Engine(catalog), store)
    from streams.events import validate_event

    attrs = {"tier": "gold", "sku": "s1", "category": "phone", "zone": "UTC", "secret": "x"}
    for rec in (ev("g1", "c1", "go", "+0", "web", **attrs), ev("n1", "c1", "noise", "+1m", "web", **attrs)):
        proc.process(validate_event(rec))
    state = store.get("c1")
    assert state is not None
    assert [(e.event_id, e.channel, e.attributes) for e in state.events] == [
        ("g1", "web", {"tier": "gold", "sku": "s1", "category": "phone", "zone": "UTC"})
    ]
