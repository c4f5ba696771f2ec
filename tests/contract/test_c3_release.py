"""Contract section 3.4: `release_on`."""

from __future__ import annotations

import pytest

from .helpers import Case, E, R, S, brief, case, engage, ev, iso, ms, on, pick, replay, run_case, suppress


def hold(
    for_="7d", category=None, release_where=None, release_event="resolved", name="hold", channels=("email", "sms"), **kw
):
    rel = {"event": release_event}
    if release_where is not None:
        rel["where"] = release_where
    return on(name, "trigger", [suppress(list(channels), for_, category=category)], release_on=rel, priority=90, **kw)


def promo():
    """A low-priority engagement on email, fired by `go`."""
    return on("promo", "go", [engage("email", "sale")], priority=10)


def test_3_4_release_lifts_active_suppressions(topo_dir):
    """3.4: one RELEASE per (channel, category), effective at the releasing event's time,
    evidence the releasing event; expires_at null (notes)."""
    d = topo_dir(hold())
    res = replay(d, [ev("t1", "c1", "trigger", "+0"), ev("r1", "c1", "resolved", "+1h")])
    assert brief(res.decisions) == [
        S("email", "+0", ["t1"]),
        S("sms", "+0", ["t1"]),
        R("email", "+1h", ["r1"]),
        R("sms", "+1h", ["r1"]),
    ]
    rel = pick(res.decisions, kind="RELEASE")
    assert [(x["topology"], x["customer_id"], x["expires_at"], x["action"], x["not_before"]) for x in rel] == [
        ("hold", "c1", None, None, None)
    ] * 2


def test_3_4_released_suppression_no_longer_blocks(topo_dir):
    """3.4 + 4.1: after the release, an engagement on that channel is emitted."""
    d = topo_dir(hold(), promo())
    recs = [ev("t1", "c1", "trigger", "+0"), ev("r1", "c1", "resolved", "+1h"), ev("g1", "c1", "go", "+2h")]
    res = replay(d, recs)
    assert pick(res.decisions, kind="ENGAGE") != []
    assert brief(pick(res.decisions, kind="ENGAGE")) == [E("email", "+2h", ["g1"])]


def test_3_4_without_release_the_suppression_blocks(topo_dir):
    """3.4 + 4.1 (control for the test above): no release -> the engagement is blocked."""
    d = topo_dir(hold(), promo())
    res = replay(d, [ev("t1", "c1", "trigger", "+0"), ev("g1", "c1", "go", "+2h")])
    assert pick(res.decisions, kind="ENGAGE") == []
    assert [a["status"] for a in pick(res.audit, kind="ENGAGE")] == ["blocked"]


def test_3_4_release_without_suppression_does_nothing(topo_dir):
    """3.4: nothing held -> no RELEASE; a later suppression is made as usual."""
    d = topo_dir(hold())
    res = replay(d, [ev("r1", "c1", "resolved", "+0"), ev("t1", "c1", "trigger", "+1m")])
    assert brief(res.decisions) == [S("email", "+1m", ["t1"]), S("sms", "+1m", ["t1"])]


def test_3_4_only_this_topologys_suppressions_are_released(topo_dir):
    """3.4: "every suppression this topology holds": another topology's suppression of the
    same channel stays and still blocks."""
    other = on("other", "trigger", [suppress(["email"], "7d")], priority=80)
    d = topo_dir(hold(channels=("email",)), other, promo())
    recs = [ev("t1", "c1", "trigger", "+0"), ev("r1", "c1", "resolved", "+1h"), ev("g1", "c1", "go", "+2h")]
    res = replay(d, recs)
    assert brief(res.decisions, "topology") == [
        (*S("email", "+0", ["t1"]), "hold"),
        (*S("email", "+0", ["t1"]), "other"),
        (*R("email", "+1h", ["r1"]), "hold"),
    ]
    other_id = pick(res.decisions, kind="SUPPRESS", topology="other")[0]["decision_id"]
    assert [(a["status"], a["cause"]) for a in pick(res.audit, kind="ENGAGE")] == [
        ("blocked", f"suppressed_by {other_id}")
    ]


def test_3_4_different_categories_release_separately(topo_dir):
    """3.4: one RELEASE per (channel, category): two categories -> two RELEASEs."""
    d = topo_dir(hold(channels=("email",), category="{e.category}"))
    recs = [
        ev("t1", "c1", "trigger", "+0", category="phone"),
        ev("t2", "c1", "trigger", "+10m", category="tablet"),
        ev("r1", "c1", "resolved", "+1h"),
    ]
    res = replay(d, recs)
    assert sorted(brief(pick(res.decisions, kind="RELEASE"))) == [
        R("email", "+1h", ["r1"], category="phone"),
        R("email", "+1h", ["r1"], category="tablet"),
    ]


def test_3_4_release_applied_before_matches_of_the_same_event(topo_dir):
    """3.4: "A release is applied before the matches that the same event makes": the same
    event releases the old suppression, then makes a new one."""
    d = topo_dir(on("hold", "trigger", [suppress(["email"], "1d")], release_on={"event": "trigger"}))
    res = replay(d, [ev("t1", "c1", "trigger", "+0"), ev("t2", "c1", "trigger", "+1h")])
    assert brief(res.decisions) == [
        S("email", "+0", ["t1"]),
        R("email", "+1h", ["t2"]),
        S("email", "+1h", ["t2"]),
    ]


def test_3_4_release_applied_before_an_engagement_of_the_same_event(topo_dir):
    """3.4: the releasing event's own engagement on the released channel is not blocked."""
    thanks = on("thanks", "resolved", [engage("email", "thank_you")], priority=10)
    d = topo_dir(hold(channels=("email",)), thanks)
    res = replay(d, [ev("t1", "c1", "trigger", "+0"), ev("r1", "c1", "resolved", "+1h")])
    assert brief(res.decisions, "topology") == [
        (*S("email", "+0", ["t1"]), "hold"),
        (*R("email", "+1h", ["r1"]), "hold"),
        (*E("email", "+1h", ["r1"]), "thanks"),
    ]


def test_3_4_suppression_starting_after_the_release_time_is_kept(topo_dir):
    """3.4: only suppressions *active at that event's time* are lifted: an out-of-order release
    event earlier than the suppression's start lifts nothing."""
    d = topo_dir(hold(channels=("email",)), policies={"lateness": "1h"})
    res = replay(d, [ev("t1", "c1", "trigger", "+30m"), ev("r1", "c1", "resolved", "+10m")])
    assert res.rejected == []
    assert brief(res.decisions) == [S("email", "+30m", ["t1"])]


def test_3_4_released_suppression_still_blocks_before_the_release_time(topo_dir):
    """4.1 + notes: a released suppression ends at the release time; an out-of-order
    engagement effective before that is still blocked."""
    d = topo_dir(hold(channels=("email",)), promo(), policies={"lateness": "1h"})
    recs = [ev("t1", "c1", "trigger", "+0"), ev("r1", "c1", "resolved", "+20m"), ev("g1", "c1", "go", "+15m")]
    res = replay(d, recs)
    assert res.rejected == []
    sup_id = pick(res.decisions, kind="SUPPRESS")[0]["decision_id"]
    assert pick(res.decisions, kind="ENGAGE") == []
    assert [(a["status"], a["cause"], a["effective_at"]) for a in pick(res.audit, kind="ENGAGE")] == [
        ("blocked", f"suppressed_by {sup_id}", iso("+15m"))
    ]


TRIGGER = ev("t1", "c1", "trigger", "+0")


@pytest.mark.parametrize(
    "c",
    [
        case(
            "3_4_expired_suppression_is_not_released",
            "3.4 + 3.3: active over [effective_at, effective_at + for): at the end it is no longer "
            "active, so nothing is released.",
            hold(for_="1h"),
            [TRIGGER, ev("r1", "c1", "resolved", "+1h")],
            [],
        ),
        case(
            "3_4_suppression_released_one_ms_before_its_end",
            "3.4: 1 ms before the end the suppression is active and is released.",
            hold(for_="1h"),
            [TRIGGER, ev("r1", "c1", "resolved", ms("+1h") - 1)],
            [R("email", ms("+1h") - 1, ["r1"]), R("sms", ms("+1h") - 1, ["r1"])],
        ),
        case(
            "3_4_release_at_the_suppressions_start_instant",
            "3.4: the suppression is active from its effective_at (inclusive).",
            hold(),
            [TRIGGER, ev("r1", "c1", "resolved", "+0")],
            [R("email", "+0", ["r1"]), R("sms", "+0", ["r1"])],
        ),
        case(
            "3_4_another_topologys_release_event_does_not_release",
            "3.4: a topology without `release_on` for this event keeps its suppression.",
            hold(channels=("email",), release_event="fixed"),
            [TRIGGER, ev("r1", "c1", "resolved", "+1h")],
            [],
        ),
        case(
            "3_4_one_release_per_channel_and_category",
            "3.4: two suppressions of the same (channel, category) -> one RELEASE each pair.",
            hold(),
            [TRIGGER, ev("t2", "c1", "trigger", "+10m"), ev("r1", "c1", "resolved", "+1h")],
            [R("email", "+1h", ["r1"]), R("sms", "+1h", ["r1"])],
        ),
        case(
            "3_4_release_is_per_customer",
            '3.4: "for that customer": another customer\'s release event lifts nothing.',
            hold(),
            [TRIGGER, ev("r1", "c2", "resolved", "+1h")],
            [],
        ),
        case(
            "3_4_release_on_where",
            "3.4: `release_on: {event, where}`: an event failing `where` releases nothing.",
            hold(channels=("email",), release_where={"ok": "yes"}),
            [TRIGGER, ev("r1", "c1", "resolved", "+1h", ok="no"), ev("r2", "c1", "resolved", "+2h", ok="yes")],
            [R("email", "+2h", ["r2"])],
        ),
        case(
            "3_4_released_suppression_is_not_released_twice",
            "3.4: once lifted, a suppression is no longer active: a second release event finds nothing.",
            hold(channels=("email",)),
            [TRIGGER, ev("r1", "c1", "resolved", "+1h"), ev("r2", "c1", "resolved", "+2h")],
            [R("email", "+1h", ["r1"])],
        ),
    ],
)
def test_3_4_releases(topo_dir, c: Case) -> None:
    """3.4: the case's events make exactly these RELEASE decisions ([]: none)."""
    assert brief(pick(run_case(topo_dir, c).decisions, kind="RELEASE")) == c.expect, c.rule
