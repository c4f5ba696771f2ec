"""Contract section 3.2: `count` and `absence` conditions.

Each table is one topology shape, the events replayed, and the decisions they
must make as `brief` rows (an empty list: no decision). A case's `rule` says
which sentence of the contract it covers and is shown when it fails.
"""

from __future__ import annotations

import pytest

from .helpers import Case, E, brief, case, engage, ev, iso, ms, replay, run_case, topo


def count_topo(n=3, within="10m", where=None, then=None, name="cnt", **kw):
    c = {"event": "fail", "at_least": n, "within": within, "as": "last"}
    if where is not None:
        c["where"] = where
    return topo(name, {"count": c}, then or [engage("email")], **kw)


def fails(*offsets, customer="c1", prefix="f", **attrs):
    return [ev(f"{prefix}{i}", customer, "fail", at, **attrs) for i, at in enumerate(offsets, 1)]


# ---------------------------------------------------------------------- count

COUNT = [
    case(
        "count_matches_when_n_reached",
        "3.2 count: the event that brings the count to N matches; evidence the N events.",
        count_topo(),
        fails("+0", "+4m", "+8m"),
        [E("email", "+8m", ["f1", "f2", "f3"])],
    ),
    case(
        "count_below_n_makes_nothing",
        "3.2 count: N-1 qualifying events make nothing.",
        count_topo(),
        fails("+0", "+4m"),
        [],
    ),
    case(
        "count_window_excludes_exactly_t_minus_d",
        "3.2 count: the window is (t - D, t]: an event exactly D before t is outside.",
        count_topo(),
        fails("+0", "+5m", "+10m"),
        [],
    ),
    case(
        "count_window_includes_just_after_t_minus_d",
        "3.2 count: an event 1 ms inside (t - D, t] counts.",
        count_topo(),
        fails("+0", "+5m", ms("+10m") - 1),
        [E("email", ms("+10m") - 1, ["f1", "f2", "f3"])],
    ),
    case(
        "count_events_at_the_same_instant_all_count",
        "3.2 count: t itself is inside (t - D, t].",
        count_topo(),
        fails("+1m", "+1m", "+1m"),
        [E("email", "+1m", ["f1", "f2", "f3"])],
    ),
    case(
        "count_each_event_at_or_above_n_matches_with_last_n_evidence",
        "3.2 count: matched by *each* qualifying event bringing the count to N or more; "
        "evidence is the last N of them.",
        count_topo(),
        fails("+0", "+1m", "+2m", "+3m", "+4m"),
        [
            E("email", "+2m", ["f1", "f2", "f3"]),
            E("email", "+3m", ["f2", "f3", "f4"]),
            E("email", "+4m", ["f3", "f4", "f5"]),
        ],
    ),
    case(
        "count_old_events_leave_the_window",
        "3.2 count: window slides with t; events at or before t - D stop counting.",
        count_topo(),
        fails("+0", "+5m", "+11m", "+12m"),
        # at +11m: (1m, 11m] holds f2, f3 -> 2; at +12m: f2, f3, f4 -> 3
        [E("email", "+12m", ["f2", "f3", "f4"])],
    ),
    case(
        "count_where_selects_qualifying_events",
        "3.2 count: only events passing `where` are qualifying (count and evidence).",
        count_topo(n=2, where={"kind": "hard"}),
        [
            ev("f1", "c1", "fail", "+0", kind="hard"),
            ev("f2", "c1", "fail", "+1m", kind="soft"),
            ev("f3", "c1", "fail", "+2m"),
            ev("f4", "c1", "fail", "+3m", kind="hard"),
        ],
        [E("email", "+3m", ["f1", "f4"])],
    ),
    case(
        "count_is_per_customer",
        "3.2 count: only the customer's own events count.",
        count_topo(n=2),
        [ev("f1", "c1", "fail", "+0"), ev("f2", "c2", "fail", "+1m")],
        [],
    ),
    case(
        "count_at_least_one",
        "3.2 count: N = 1 -> every qualifying event matches.",
        count_topo(n=1),
        fails("+0", "+1m"),
        [E("email", "+0", ["f1"]), E("email", "+1m", ["f2"])],
    ),
    case(
        "count_out_of_order",
        "2 + 3.2 count: evaluated as if in event-time order: the event at +2m is the one that "
        "brings the count to 3 once the +1m event arrives.",
        count_topo(),
        [ev("f1", "c1", "fail", "+0"), ev("f3", "c1", "fail", "+2m"), ev("f2", "c1", "fail", "+1m")],
        [E("email", "+2m", ["f1", "f2", "f3"])],
        rejected=[],
    ),
    case(
        "count_earlier_event_found_late_does_not_fire_again",
        "3.2 count + 4.4: an on-time earlier event makes an earlier count match (at f2); it is "
        "effective before the last firing, so it does not fire (cooldown 0).",
        count_topo(),
        [
            ev("f1", "c1", "fail", "+0"),
            ev("f2", "c1", "fail", "+1m"),
            ev("f3", "c1", "fail", "+2m"),
            ev("f0", "c1", "fail", "-1m"),
        ],
        [E("email", "+2m", ["f1", "f2", "f3"])],
        rejected=[],
    ),
]


@pytest.mark.parametrize("c", COUNT)
def test_3_2_count(topo_dir, c: Case) -> None:
    """3.2 count: the case's events make exactly these decisions ([]: none)."""
    assert brief(run_case(topo_dir, c).decisions) == c.expect, c.rule


def test_3_2_count_as_binds_the_last_event(topo_dir):
    """3.2 count: `as` binds the last one (used by a template)."""
    d = topo_dir(count_topo(then=[engage("email", "help_{last.sku}", category="{last.category}")]))
    recs = [
        ev("f1", "c1", "fail", "+0", sku="s1", category="k1"),
        ev("f2", "c1", "fail", "+1m", sku="s2", category="k2"),
        ev("f3", "c1", "fail", "+2m", sku="s3", category="k3"),
    ]
    res = replay(d, recs)
    assert [(x["action"], x["category"], x["evidence"]) for x in res.decisions] == [
        ("help_s3", "k3", ["f1", "f2", "f3"])
    ]


# -------------------------------------------------------------------- absence


def absence_topo(for_="1h", after_where=None, missing_where=None, name="cart_left", then=None, **kw):
    after = {"as": "cart", "event": "cart"}
    if after_where is not None:
        after["where"] = after_where
    missing = {"event": "purchase"}
    if missing_where is not None:
        missing["where"] = missing_where
    return topo(
        name,
        {"absence": {"after": after, "missing": missing, "for": for_}},
        then or [engage("email", "remind", category="{cart.category}")],
        **kw,
    )


UNTIL = iso("+1d")
REMINDED = [E("email", "+1h", ["k1"], category="shoes")]  # k1 (shoes) at +0, nothing missing for 1h


def absence(id_, rule, events, expect, topology=None, **kw):
    """An absence case; replayed until +1d, so every deadline of the day has passed."""
    return case(id_, rule, topology or absence_topo(), events, expect, until=UNTIL, **kw)


ABSENCE = [
    absence(
        "absence_matches_at_deadline",
        "3.2 absence: no `missing` event -> match; effective time = t0 + D; evidence the after event; "
        "`as` binds the after event.",
        [ev("k1", "c1", "cart", "+0", category="shoes")],
        REMINDED,
    ),
    absence(
        "absence_missing_inside_window_prevents",
        "3.2 absence: a `missing` event in (t0, t0 + D] prevents the match.",
        [ev("k1", "c1", "cart", "+0"), ev("p1", "c1", "purchase", "+30m")],
        [],
    ),
    absence(
        "absence_missing_exactly_at_deadline_prevents",
        "3.2 absence: the window (t0, t0 + D] is closed at the deadline.",
        [ev("k1", "c1", "cart", "+0"), ev("p1", "c1", "purchase", "+1h")],
        [],
    ),
    absence(
        "absence_missing_just_after_deadline_does_not_prevent",
        "3.2 absence: a `missing` event 1 ms after the deadline is outside the window.",
        [ev("k1", "c1", "cart", "+0", category="shoes"), ev("p1", "c1", "purchase", ms("+1h") + 1)],
        REMINDED,
    ),
    absence(
        "absence_missing_at_t0_does_not_prevent",
        "3.2 absence: the window (t0, t0 + D] is open at t0: a `missing` event at t0 does not count.",
        [ev("k1", "c1", "cart", "+0", category="shoes"), ev("p1", "c1", "purchase", "+0")],
        REMINDED,
    ),
    absence(
        "absence_missing_before_t0_does_not_prevent",
        "3.2 absence: an earlier `missing` event does not count.",
        [ev("p1", "c1", "purchase", "-5m"), ev("k1", "c1", "cart", "+0", category="shoes")],
        REMINDED,
    ),
    absence(
        "absence_missing_out_of_order_before_firing_prevents",
        "2 + 3.2 absence: a `missing` event arriving out of order (on time, before the timer fires) counts.",
        [ev("k1", "c1", "cart", "+0"), ev("n1", "c1", "noise", "+50m"), ev("p1", "c1", "purchase", "+45m")],
        [],
        rejected=[],
    ),
    absence(
        "absence_other_customers_missing_does_not_prevent",
        "3.2 absence: only the customer's own `missing` events count.",
        [ev("k1", "c1", "cart", "+0", category="shoes"), ev("p1", "c2", "purchase", "+10m")],
        REMINDED,
    ),
    absence(
        "absence_missing_where-not_matching",
        "3.2 absence: `missing` is an `{event, where}` test: a non-matching event does not count.",
        [ev("k1", "c1", "cart", "+0", category="shoes"), ev("p1", "c1", "purchase", "+10m", "store")],
        REMINDED,
        topology=absence_topo(missing_where={"channel": "web"}),
    ),
    absence(
        "absence_missing_where-matching",
        "3.2 absence: `missing` is an `{event, where}` test: a matching event counts.",
        [ev("k1", "c1", "cart", "+0", category="shoes"), ev("p1", "c1", "purchase", "+10m", "web")],
        [],
        topology=absence_topo(missing_where={"channel": "web"}),
    ),
    absence(
        "absence_after_where-not_matching",
        "3.2 absence: only `after` events passing `where` arm a deadline.",
        [ev("k1", "c1", "cart", "+0", "store", category="shoes")],
        [],
        topology=absence_topo(after_where={"channel": ["web", "app"]}),
    ),
    absence(
        "absence_after_where-matching",
        "3.2 absence: only `after` events passing `where` arm a deadline.",
        [ev("k1", "c1", "cart", "+0", "app", category="shoes")],
        REMINDED,
        topology=absence_topo(after_where={"channel": ["web", "app"]}),
    ),
    absence(
        "absence_each_after_event_arms_its_own_deadline",
        "3.2 absence: *each* `after` event arms a deadline; a `missing` event voids only the windows that contain it.",
        [
            ev("k1", "c1", "cart", "+0", category="a"),
            ev("k2", "c1", "cart", "+20m", category="b"),
            ev("k3", "c1", "cart", "+40m", category="c"),
            ev("p1", "c1", "purchase", "+1h10m"),  # in k2's and k3's windows, not k1's
        ],
        [E("email", "+1h", ["k1"], category="a")],
    ),
    absence(
        "absence_two_deadlines_both_fire",
        "3.2 absence: two after events, nothing missing -> two matches at their deadlines.",
        [ev("k1", "c1", "cart", "+0", category="a"), ev("k2", "c1", "cart", "+20m", category="b")],
        [E("email", "+1h", ["k1"], category="a"), E("email", "+1h20m", ["k2"], category="b")],
    ),
    absence(
        "absence_decision_not_retracted_by_missing_event_after_firing",
        "2 + notes: the timer fires when the watermark reaches the deadline (before the event "
        "that moved it); a `missing` event at the deadline arriving afterwards is on time but "
        "cannot retract the decision.",
        [
            ev("k1", "c1", "cart", "+0", category="shoes"),
            ev("n1", "c2", "noise", "+1h10m"),  # watermark -> +1h: fires
            ev("p1", "c1", "purchase", "+1h"),  # exactly at the watermark: not late
        ],
        REMINDED,
        rejected=[],
    ),
    absence(
        "absence_late_after_event_arms_nothing",
        "2 + 3.2: a late `after` event is not evaluated, so it arms no deadline.",
        [ev("n1", "c2", "noise", "+1h"), ev("k1", "c1", "cart", "+0", category="x")],
        [],
        rejected=[(2, "late")],
    ),
    absence(
        "absence_late_missing_event_does_not_count",
        "2 + 3.2 absence: a late `missing` event is not evaluated, so it does not prevent the match.",
        [
            ev("k1", "c1", "cart", "+0", category="shoes"),
            ev("n1", "c2", "noise", "+50m"),
            ev("p1", "c1", "purchase", "+30m"),
        ],  # watermark +40m -> late
        REMINDED,
        rejected=[(3, "late")],
    ),
]


@pytest.mark.parametrize("c", ABSENCE)
def test_3_2_absence(topo_dir, c: Case) -> None:
    """3.2 absence: the case's events, replayed until +1d, make exactly these decisions ([]: none)."""
    assert brief(run_case(topo_dir, c).decisions) == c.expect, c.rule
