"""Contract section 3.2: `count` and `absence` conditions."""

from __future__ import annotations

from .helpers import E, brief, engage, ev, iso, ms, replay, topo


def count_topo(n=3, within="10m", where=None, then=None, name="cnt", **kw):
    c = {"event": "fail", "at_least": n, "within": within, "as": "last"}
    if where is not None:
        c["where"] = where
    return topo(name, {"count": c}, then or [engage("email")], **kw)


def fails(*offsets, customer="c1", prefix="f", **attrs):
    return [ev(f"{prefix}{i}", customer, "fail", at, **attrs) for i, at in enumerate(offsets, 1)]


# ---------------------------------------------------------------------- count


def test_3_2_count_matches_when_n_reached(topo_dir):
    """3.2 count: the event that brings the count to N matches; evidence the N events."""
    d = topo_dir(count_topo())
    res = replay(d, fails("+0", "+4m", "+8m"))
    assert brief(res.decisions) == [E("email", "+8m", ["f1", "f2", "f3"])]


def test_3_2_count_below_n_makes_nothing(topo_dir):
    """3.2 count: N-1 qualifying events make nothing."""
    d = topo_dir(count_topo())
    assert replay(d, fails("+0", "+4m")).decisions == []


def test_3_2_count_window_excludes_exactly_t_minus_d(topo_dir):
    """3.2 count: the window is (t - D, t]: an event exactly D before t is outside."""
    d = topo_dir(count_topo())
    assert replay(d, fails("+0", "+5m", "+10m")).decisions == []


def test_3_2_count_window_includes_just_after_t_minus_d(topo_dir):
    """3.2 count: an event 1 ms inside (t - D, t] counts."""
    d = topo_dir(count_topo())
    res = replay(d, fails("+0", "+5m", ms("+10m") - 1))
    assert brief(res.decisions) == [E("email", ms("+10m") - 1, ["f1", "f2", "f3"])]


def test_3_2_count_events_at_the_same_instant_all_count(topo_dir):
    """3.2 count: t itself is inside (t - D, t]."""
    d = topo_dir(count_topo())
    res = replay(d, fails("+1m", "+1m", "+1m"))
    assert brief(res.decisions) == [E("email", "+1m", ["f1", "f2", "f3"])]


def test_3_2_count_each_event_at_or_above_n_matches_with_last_n_evidence(topo_dir):
    """3.2 count: matched by *each* qualifying event bringing the count to N or more;
    evidence is the last N of them."""
    d = topo_dir(count_topo())
    res = replay(d, fails("+0", "+1m", "+2m", "+3m", "+4m"))
    assert brief(res.decisions) == [
        E("email", "+2m", ["f1", "f2", "f3"]),
        E("email", "+3m", ["f2", "f3", "f4"]),
        E("email", "+4m", ["f3", "f4", "f5"]),
    ]


def test_3_2_count_old_events_leave_the_window(topo_dir):
    """3.2 count: window slides with t; events at or before t - D stop counting."""
    d = topo_dir(count_topo())
    res = replay(d, fails("+0", "+5m", "+11m", "+12m"))
    # at +11m: (1m, 11m] holds f2, f3 -> 2; at +12m: f2, f3, f4 -> 3
    assert brief(res.decisions) == [E("email", "+12m", ["f2", "f3", "f4"])]


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


def test_3_2_count_where_selects_qualifying_events(topo_dir):
    """3.2 count: only events passing `where` are qualifying (count and evidence)."""
    d = topo_dir(count_topo(n=2, where={"kind": "hard"}))
    recs = [
        ev("f1", "c1", "fail", "+0", kind="hard"),
        ev("f2", "c1", "fail", "+1m", kind="soft"),
        ev("f3", "c1", "fail", "+2m"),
        ev("f4", "c1", "fail", "+3m", kind="hard"),
    ]
    res = replay(d, recs)
    assert brief(res.decisions) == [E("email", "+3m", ["f1", "f4"])]


def test_3_2_count_is_per_customer(topo_dir):
    """3.2 count: only the customer's own events count."""
    d = topo_dir(count_topo(n=2))
    recs = [ev("f1", "c1", "fail", "+0"), ev("f2", "c2", "fail", "+1m")]
    assert replay(d, recs).decisions == []


def test_3_2_count_at_least_one(topo_dir):
    """3.2 count: N = 1 -> every qualifying event matches."""
    d = topo_dir(count_topo(n=1))
    res = replay(d, fails("+0", "+1m"))
    assert brief(res.decisions) == [E("email", "+0", ["f1"]), E("email", "+1m", ["f2"])]


def test_3_2_count_out_of_order(topo_dir):
    """2 + 3.2 count: evaluated as if in event-time order: the event at +2m is the one that
    brings the count to 3 once the +1m event arrives."""
    d = topo_dir(count_topo())
    recs = [ev("f1", "c1", "fail", "+0"), ev("f3", "c1", "fail", "+2m"), ev("f2", "c1", "fail", "+1m")]
    res = replay(d, recs)
    assert res.rejected == []
    assert brief(res.decisions) == [E("email", "+2m", ["f1", "f2", "f3"])]


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


def test_3_2_absence_matches_at_deadline(topo_dir):
    """3.2 absence: no `missing` event -> match; effective time = t0 + D; evidence the after event;
    `as` binds the after event."""
    d = topo_dir(absence_topo())
    res = replay(d, [ev("k1", "c1", "cart", "+0", category="shoes")], until=UNTIL)
    assert brief(res.decisions) == [E("email", "+1h", ["k1"], category="shoes")]


def test_3_2_absence_missing_inside_window_prevents(topo_dir):
    """3.2 absence: a `missing` event in (t0, t0 + D] prevents the match."""
    d = topo_dir(absence_topo())
    recs = [ev("k1", "c1", "cart", "+0"), ev("p1", "c1", "purchase", "+30m")]
    assert replay(d, recs, until=UNTIL).decisions == []


def test_3_2_absence_missing_exactly_at_deadline_prevents(topo_dir):
    """3.2 absence: the window (t0, t0 + D] is closed at the deadline."""
    d = topo_dir(absence_topo())
    recs = [ev("k1", "c1", "cart", "+0"), ev("p1", "c1", "purchase", "+1h")]
    assert replay(d, recs, until=UNTIL).decisions == []


def test_3_2_absence_missing_just_after_deadline_does_not_prevent(topo_dir):
    """3.2 absence: a `missing` event 1 ms after the deadline is outside the window."""
    d = topo_dir(absence_topo())
    recs = [ev("k1", "c1", "cart", "+0", category="shoes"), ev("p1", "c1", "purchase", ms("+1h") + 1)]
    res = replay(d, recs, until=UNTIL)
    assert brief(res.decisions) == [E("email", "+1h", ["k1"], category="shoes")]


def test_3_2_absence_missing_at_t0_does_not_prevent(topo_dir):
    """3.2 absence: the window (t0, t0 + D] is open at t0: a `missing` event at t0 does not count."""
    d = topo_dir(absence_topo())
    recs = [ev("k1", "c1", "cart", "+0", category="shoes"), ev("p1", "c1", "purchase", "+0")]
    res = replay(d, recs, until=UNTIL)
    assert brief(res.decisions) == [E("email", "+1h", ["k1"], category="shoes")]


def test_3_2_absence_missing_before_t0_does_not_prevent(topo_dir):
    """3.2 absence: an earlier `missing` event does not count."""
    d = topo_dir(absence_topo())
    recs = [ev("p1", "c1", "purchase", "-5m"), ev("k1", "c1", "cart", "+0", category="shoes")]
    res = replay(d, recs, until=UNTIL)
    assert brief(res.decisions) == [E("email", "+1h", ["k1"], category="shoes")]


def test_3_2_absence_missing_out_of_order_before_firing_prevents(topo_dir):
    """2 + 3.2 absence: a `missing` event arriving out of order (on time, before the timer fires) counts."""
    d = topo_dir(absence_topo())
    recs = [ev("k1", "c1", "cart", "+0"), ev("n1", "c1", "noise", "+50m"), ev("p1", "c1", "purchase", "+45m")]
    res = replay(d, recs, until=UNTIL)
    assert res.rejected == []
    assert res.decisions == []


def test_3_2_absence_other_customers_missing_does_not_prevent(topo_dir):
    """3.2 absence: only the customer's own `missing` events count."""
    d = topo_dir(absence_topo())
    recs = [ev("k1", "c1", "cart", "+0", category="shoes"), ev("p1", "c2", "purchase", "+10m")]
    res = replay(d, recs, until=UNTIL)
    assert brief(res.decisions) == [E("email", "+1h", ["k1"], category="shoes")]


def test_3_2_absence_missing_where(topo_dir):
    """3.2 absence: `missing` is an `{event, where}` test: a non-matching event does not count."""
    d = topo_dir(absence_topo(missing_where={"channel": "web"}))
    recs = [ev("k1", "c1", "cart", "+0", category="shoes"), ev("p1", "c1", "purchase", "+10m", "store")]
    res = replay(d, recs, until=UNTIL)
    assert brief(res.decisions) == [E("email", "+1h", ["k1"], category="shoes")]
    recs[1] = ev("p1", "c1", "purchase", "+10m", "web")
    assert replay(d, recs, until=UNTIL).decisions == []


def test_3_2_absence_after_where(topo_dir):
    """3.2 absence: only `after` events passing `where` arm a deadline."""
    d = topo_dir(absence_topo(after_where={"channel": ["web", "app"]}))
    res = replay(d, [ev("k1", "c1", "cart", "+0", "store", category="shoes")], until=UNTIL)
    assert res.decisions == []
    res = replay(d, [ev("k1", "c1", "cart", "+0", "app", category="shoes")], until=UNTIL)
    assert brief(res.decisions) == [E("email", "+1h", ["k1"], category="shoes")]


def test_3_2_absence_each_after_event_arms_its_own_deadline(topo_dir):
    """3.2 absence: *each* `after` event arms a deadline; a `missing` event voids only the
    windows that contain it."""
    d = topo_dir(absence_topo())
    recs = [
        ev("k1", "c1", "cart", "+0", category="a"),
        ev("k2", "c1", "cart", "+20m", category="b"),
        ev("k3", "c1", "cart", "+40m", category="c"),
        ev("p1", "c1", "purchase", "+1h10m"),  # in k2's and k3's windows, not k1's
    ]
    res = replay(d, recs, until=UNTIL)
    assert brief(res.decisions) == [E("email", "+1h", ["k1"], category="a")]


def test_3_2_absence_two_deadlines_both_fire(topo_dir):
    """3.2 absence: two after events, nothing missing -> two matches at their deadlines."""
    d = topo_dir(absence_topo())
    recs = [ev("k1", "c1", "cart", "+0", category="a"), ev("k2", "c1", "cart", "+20m", category="b")]
    res = replay(d, recs, until=UNTIL)
    assert brief(res.decisions) == [
        E("email", "+1h", ["k1"], category="a"),
        E("email", "+1h20m", ["k2"], category="b"),
    ]


def test_3_2_absence_decision_not_retracted_by_missing_event_after_firing(topo_dir):
    """2 + notes: the timer fires when the watermark reaches the deadline (before the event
    that moved it); a `missing` event at the deadline arriving afterwards is on time but
    cannot retract the decision."""
    d = topo_dir(absence_topo())
    recs = [
        ev("k1", "c1", "cart", "+0", category="shoes"),
        ev("n1", "c2", "noise", "+1h10m"),  # watermark -> +1h: fires
        ev("p1", "c1", "purchase", "+1h"),  # exactly at the watermark: not late
    ]
    res = replay(d, recs, until=UNTIL)
    assert res.rejected == []
    assert brief(res.decisions) == [E("email", "+1h", ["k1"], category="shoes")]


def test_3_2_absence_late_after_event_arms_nothing(topo_dir):
    """2 + 3.2: a late `after` event is not evaluated, so it arms no deadline."""
    d = topo_dir(absence_topo())
    recs = [ev("n1", "c2", "noise", "+1h"), ev("k1", "c1", "cart", "+0", category="x")]
    res = replay(d, recs, until=UNTIL)
    assert res.rejected == [(2, "late")]
    assert res.decisions == []


def test_3_2_absence_late_missing_event_does_not_count(topo_dir):
    """2 + 3.2 absence: a late `missing` event is not evaluated, so it does not prevent the match."""
    d = topo_dir(absence_topo())
    recs = [
        ev("k1", "c1", "cart", "+0", category="shoes"),
        ev("n1", "c2", "noise", "+50m"),
        ev("p1", "c1", "purchase", "+30m"),
    ]  # watermark +40m -> late
    res = replay(d, recs, until=UNTIL)
    assert res.rejected == [(3, "late")]
    assert brief(res.decisions) == [E("email", "+1h", ["k1"], category="shoes")]


def test_3_2_count_earlier_event_found_late_does_not_fire_again(topo_dir):
    """3.2 count + 4.4: an on-time earlier event makes an earlier count match (at f2); it is
    effective before the last firing, so it does not fire (cooldown 0)."""
    d = topo_dir(count_topo())
    recs = [
        ev("f1", "c1", "fail", "+0"),
        ev("f2", "c1", "fail", "+1m"),
        ev("f3", "c1", "fail", "+2m"),
        ev("f0", "c1", "fail", "-1m"),
    ]
    res = replay(d, recs)
    assert res.rejected == []
    assert brief(res.decisions) == [E("email", "+2m", ["f1", "f2", "f3"])]
