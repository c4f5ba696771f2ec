"""Contract section 3.2: `sequence` conditions (within, unless, step order, latest filling)."""

from __future__ import annotations

from .helpers import E, S, brief, engage, ev, ms, replay, suppress, topo


def seq(name, *steps, within=None, unless=None, then=None, **kw):
    when = {"sequence": list(steps)}
    if within is not None:
        when["within"] = within
    if unless is not None:
        when["unless"] = unless
    return topo(name, when, then or [engage("email")], **kw)


def step(event, as_=None, within=None, where=None):
    s = {}
    if as_:
        s["as"] = as_
    s["event"] = event
    if where is not None:
        s["where"] = where
    if within is not None:
        s["within"] = within
    return s


def evidence(res):
    return [d["evidence"] for d in res.decisions]


# ---------------------------------------------------------------- basic shape


def test_3_2_three_step_sequence_matches_in_step_order(topo_dir):
    """3.2: ordered steps; effective time = last event; evidence in step order."""
    d = topo_dir(seq("abc", step("a"), step("b"), step("c")))
    recs = [ev("a1", "c1", "a", "+0"), ev("b1", "c1", "b", "+1m"), ev("c1e", "c1", "c", "+2m")]
    res = replay(d, recs)
    assert brief(res.decisions) == [E("email", "+2m", ["a1", "b1", "c1e"])]


def test_3_2_single_step_sequence_matches_every_event(topo_dir):
    """3.2: a one-step sequence is completed by each qualifying event."""
    d = topo_dir(seq("a", step("a")))
    res = replay(d, [ev("a1", "c1", "a", "+0"), ev("a2", "c1", "a", "+1m")])
    assert brief(res.decisions) == [E("email", "+0", ["a1"]), E("email", "+1m", ["a2"])]


def test_3_2_incomplete_sequence_makes_nothing(topo_dir):
    """3.2: no decision until the last step is filled."""
    d = topo_dir(seq("abc", step("a"), step("b"), step("c")))
    res = replay(d, [ev("a1", "c1", "a", "+0"), ev("b1", "c1", "b", "+1m")], until=ms("+1d"))
    assert res.decisions == []
    assert res.audit == []


def test_3_2_sequences_are_per_customer(topo_dir):
    """3.2: steps are filled by one customer's events only."""
    d = topo_dir(seq("ab", step("a"), step("b")))
    res = replay(d, [ev("a1", "c1", "a", "+0"), ev("b1", "c2", "b", "+1m")])
    assert res.decisions == []


def test_3_2_other_events_may_come_between_steps(topo_dir):
    """3.2: "Other events may come between steps" (also events of a later step's type)."""
    d = topo_dir(seq("abc", step("a"), step("b"), step("c")))
    recs = [
        ev("a1", "c1", "a", "+0"),
        ev("x1", "c1", "x", "+1m"),
        ev("c0", "c1", "c", "+2m"),  # a c before any b: cannot complete yet
        ev("y1", "c1", "y", "+3m"),
        ev("b1", "c1", "b", "+4m"),
        ev("x2", "c1", "x", "+5m"),
        ev("c1e", "c1", "c", "+6m"),
    ]
    res = replay(d, recs)
    assert brief(res.decisions) == [E("email", "+6m", ["a1", "b1", "c1e"])]


def test_3_2_step_order_matters(topo_dir):
    """3.2: "A step's event may not be earlier than the previous step's event"."""
    d = topo_dir(seq("ab", step("a"), step("b")))
    res = replay(d, [ev("b1", "c1", "b", "+0"), ev("a1", "c1", "a", "+1m")])
    assert res.decisions == []


def test_3_2_step_order_by_occurred_at_even_if_arrival_is_in_step_order(topo_dir):
    """3.2 + 2: b 1 ms earlier than a (arriving after a) is earlier: no match."""
    d = topo_dir(seq("ab", step("a"), step("b")))
    res = replay(d, [ev("a1", "c1", "a", "+1m"), ev("b1", "c1", "b", ms("+1m") - 1)])
    assert res.decisions == []


def test_3_2_one_event_fills_at_most_one_step(topo_dir):
    """3.2: "one event fills at most one step": two steps of the same type need two events."""
    d = topo_dir(seq("aa", step("a"), step("a")))
    one = replay(d, [ev("a1", "c1", "a", "+0")])
    assert one.decisions == []
    two = replay(d, [ev("a1", "c1", "a", "+0"), ev("a2", "c1", "a", "+1m")])
    assert brief(two.decisions) == [E("email", "+1m", ["a1", "a2"])]


def test_3_2_same_type_steps_at_same_instant_use_arrival_order(topo_dir):
    """3.2 + 2: two events of one type at the same instant are distinct and ordered by arrival."""
    d = topo_dir(seq("aa", step("a"), step("a")))
    res = replay(d, [ev("a1", "c1", "a", "+0"), ev("a2", "c1", "a", "+0")])
    assert brief(res.decisions) == [E("email", "+0", ["a1", "a2"])]


def test_3_2_three_same_type_steps(topo_dir):
    """3.2: three steps of one type: a third event completes (x1, x2, x3); further ones use the latest."""
    d = topo_dir(seq("xxx", step("x"), step("x"), step("x")))
    recs = [ev(f"x{i}", "c1", "x", f"+{i}m") for i in range(1, 5)]
    res = replay(d, recs)
    assert evidence(res) == [["x1", "x2", "x3"], ["x2", "x3", "x4"]]


def test_3_2_where_on_a_step(topo_dir):
    """3.2 + 3.1: a step's `where` filters which events can fill it."""
    d = topo_dir(seq("ab", step("a", where={"k": "yes"}), step("b")))
    res = replay(
        d,
        [
            ev("a1", "c1", "a", "+0", k="no"),
            ev("b1", "c1", "b", "+1m"),
            ev("a2", "c1", "a", "+2m", k="yes"),
            ev("b2", "c1", "b", "+3m"),
        ],
    )
    assert evidence(res) == [["a2", "b2"]]


# --------------------------------------------------------------------- within


def test_3_2_step_within_is_inclusive(topo_dir):
    """3.2: "Every `within` is inclusive": exactly `within` after the previous step matches."""
    d = topo_dir(seq("ab", step("a"), step("b", within="10m")))
    res = replay(d, [ev("a1", "c1", "a", "+0"), ev("b1", "c1", "b", "+10m")])
    assert brief(res.decisions) == [E("email", "+10m", ["a1", "b1"])]


def test_3_2_step_within_exceeded_by_one_ms(topo_dir):
    """3.2: step within: 1 ms too late -> no match."""
    d = topo_dir(seq("ab", step("a"), step("b", within="10m")))
    res = replay(d, [ev("a1", "c1", "a", "+0"), ev("b1", "c1", "b", ms("+10m") + 1)])
    assert res.decisions == []


def test_3_2_step_within_is_measured_from_the_previous_step_not_the_first(topo_dir):
    """3.2: a step's `within` is "the most time allowed since the previous step's event"."""
    d = topo_dir(seq("abc", step("a"), step("b", within="10m"), step("c", within="10m")))
    recs = [ev("a1", "c1", "a", "+0"), ev("b1", "c1", "b", "+10m"), ev("c1e", "c1", "c", "+20m")]
    res = replay(d, recs)
    assert evidence(res) == [["a1", "b1", "c1e"]]


def test_3_2_whole_span_within_is_inclusive(topo_dir):
    """3.2: `when.within` bounds first-to-last, inclusive."""
    d = topo_dir(seq("abc", step("a"), step("b"), step("c"), within="1h"))
    recs = [ev("a1", "c1", "a", "+0"), ev("b1", "c1", "b", "+30m"), ev("c1e", "c1", "c", "+1h")]
    assert evidence(replay(d, recs)) == [["a1", "b1", "c1e"]]


def test_3_2_whole_span_within_exceeded(topo_dir):
    """3.2: whole-span within exceeded by 1 ms -> no match, though every step gap is small."""
    d = topo_dir(seq("abc", step("a"), step("b", within="40m"), step("c", within="40m"), within="1h"))
    recs = [ev("a1", "c1", "a", "+0"), ev("b1", "c1", "b", "+30m"), ev("c1e", "c1", "c", ms("+1h") + 1)]
    assert replay(d, recs).decisions == []


def test_3_2_whole_span_within_picks_a_later_first_event(topo_dir):
    """3.2: with an old a and a recent a, the span rule is met by the recent one."""
    d = topo_dir(seq("ab", step("a"), step("b"), within="30m"))
    recs = [ev("a1", "c1", "a", "+0"), ev("a2", "c1", "a", "+20m"), ev("b1", "c1", "b", "+45m")]
    assert evidence(replay(d, recs)) == [["a2", "b1"]]


# --------------------------------------------------------------------- unless


def unless_topo(unless_where=None, steps=3):
    u = {"event": "x"}
    if unless_where is not None:
        u["where"] = unless_where
    ss = [step("a"), step("b"), step("c")][:steps]
    return seq("abc", *ss, unless=u)


def test_3_2_unless_between_first_and_last_voids(topo_dir):
    """3.2 unless: an `unless` event after the first step and before the last voids the match."""
    d = topo_dir(unless_topo())
    recs = [
        ev("a1", "c1", "a", "+0"),
        ev("b1", "c1", "b", "+1m"),
        ev("x1", "c1", "x", "+2m"),
        ev("c1e", "c1", "c", "+3m"),
    ]
    assert replay(d, recs).decisions == []


def test_3_2_unless_between_first_and_second_step_voids(topo_dir):
    """3.2 unless: the window is first-to-last, not only the last gap."""
    d = topo_dir(unless_topo())
    recs = [
        ev("a1", "c1", "a", "+0"),
        ev("x1", "c1", "x", "+1m"),
        ev("b1", "c1", "b", "+2m"),
        ev("c1e", "c1", "c", "+3m"),
    ]
    assert replay(d, recs).decisions == []


def test_3_2_unless_before_first_step_does_not_void(topo_dir):
    """3.2 unless: an `unless` event before the first step's event does not count."""
    d = topo_dir(unless_topo())
    recs = [
        ev("x1", "c1", "x", "-1m"),
        ev("a1", "c1", "a", "+0"),
        ev("b1", "c1", "b", "+1m"),
        ev("c1e", "c1", "c", "+2m"),
    ]
    assert evidence(replay(d, recs)) == [["a1", "b1", "c1e"]]


def test_3_2_unless_at_the_first_steps_instant_but_before_it_does_not_void(topo_dir):
    """3.2 + 2: same occurred_at as the first step but arriving before it -> not after it."""
    d = topo_dir(unless_topo())
    recs = [
        ev("x1", "c1", "x", "+0"),
        ev("a1", "c1", "a", "+0"),
        ev("b1", "c1", "b", "+1m"),
        ev("c1e", "c1", "c", "+2m"),
    ]
    assert evidence(replay(d, recs)) == [["a1", "b1", "c1e"]]


def test_3_2_unless_at_the_first_steps_instant_after_it_voids(topo_dir):
    """3.2 + notes: same occurred_at as the first step, arriving after it -> after it -> void."""
    d = topo_dir(unless_topo())
    recs = [
        ev("a1", "c1", "a", "+0"),
        ev("x1", "c1", "x", "+0"),
        ev("b1", "c1", "b", "+1m"),
        ev("c1e", "c1", "c", "+2m"),
    ]
    assert replay(d, recs).decisions == []


def test_3_2_unless_at_the_last_steps_instant_voids(topo_dir):
    """3.2 unless: "at or before the last step's event" -> same instant as the last step voids."""
    d = topo_dir(unless_topo())
    recs = [
        ev("a1", "c1", "a", "+0"),
        ev("b1", "c1", "b", "+1m"),
        ev("x1", "c1", "x", "+2m"),
        ev("c1e", "c1", "c", "+2m"),
    ]
    assert replay(d, recs).decisions == []


def test_3_2_unless_after_last_step_does_not_void(topo_dir):
    """3.2 unless: 1 ms after the last step (arriving before it, out of order) does not void."""
    d = topo_dir(unless_topo())
    recs = [
        ev("a1", "c1", "a", "+0"),
        ev("b1", "c1", "b", "+1m"),
        ev("x1", "c1", "x", ms("+2m") + 1),
        ev("c1e", "c1", "c", "+2m"),
    ]
    res = replay(d, recs)
    assert res.rejected == []
    assert evidence(res) == [["a1", "b1", "c1e"]]


def test_3_2_unless_where_must_hold(topo_dir):
    """3.2 unless is a `{event, where}` test: a non-matching `unless` event does not void."""
    d = topo_dir(unless_topo(unless_where={"ok": "true"}))
    recs = [
        ev("a1", "c1", "a", "+0"),
        ev("x1", "c1", "x", "+1m", ok="false"),
        ev("b1", "c1", "b", "+2m"),
        ev("c1e", "c1", "c", "+3m"),
    ]
    assert evidence(replay(d, recs)) == [["a1", "b1", "c1e"]]
    recs[1] = ev("x1", "c1", "x", "+1m", ok="true")
    assert replay(d, recs).decisions == []


def test_3_2_unless_of_another_customer_does_not_void(topo_dir):
    """3.2 unless: only the customer's own events count."""
    d = topo_dir(unless_topo())
    recs = [
        ev("a1", "c1", "a", "+0"),
        ev("x1", "c2", "x", "+1m"),
        ev("b1", "c1", "b", "+2m"),
        ev("c1e", "c1", "c", "+3m"),
    ]
    assert evidence(replay(d, recs)) == [["a1", "b1", "c1e"]]


def test_3_2_unless_ignores_the_matchs_own_events(topo_dir):
    """3.2 unless: "other than the match's own events": a step event of the unless type does not void."""
    d = topo_dir(seq("opc", step("open"), step("ping"), step("close"), unless={"event": "ping"}))
    recs = [ev("o1", "c1", "open", "+0"), ev("p1", "c1", "ping", "+1m"), ev("k1", "c1", "close", "+2m")]
    assert evidence(replay(d, recs)) == [["o1", "p1", "k1"]]


def test_3_2_unless_counts_events_of_a_step_type_that_are_not_in_the_match(topo_dir):
    """3.2 unless: a second ping inside the span is not the match's own -> every filling is void."""
    d = topo_dir(seq("opc", step("open"), step("ping"), step("close"), unless={"event": "ping"}))
    recs = [
        ev("o1", "c1", "open", "+0"),
        ev("p1", "c1", "ping", "+1m"),
        ev("p2", "c1", "ping", "+2m"),
        ev("k1", "c1", "close", "+3m"),
    ]
    assert replay(d, recs).decisions == []


def test_3_2_unless_last_step_type_is_own_event(topo_dir):
    """3.2 unless: the completing event itself never voids its own match."""
    d = topo_dir(seq("ab", step("a"), step("b"), unless={"event": "b"}))
    res = replay(d, [ev("a1", "c1", "a", "+0"), ev("b1", "c1", "b", "+1m")])
    assert evidence(res) == [["a1", "b1"]]


def test_3_2_unless_voided_candidate_leaves_room_for_a_later_match(topo_dir):
    """Notes: a match voided by `unless` records nothing; a later first-step event can still match."""
    d = topo_dir(seq("ab", step("a"), step("b"), unless={"event": "x"}))
    recs = [
        ev("a1", "c1", "a", "+0"),
        ev("x1", "c1", "x", "+1m"),
        ev("b1", "c1", "b", "+2m"),
        ev("a2", "c1", "a", "+3m"),
        ev("b2", "c1", "b", "+4m"),
    ]
    assert evidence(replay(d, recs)) == [["a2", "b2"]]


# -------------------------------------------------- latest filling, backtracking


def test_3_2_latest_filling_is_chosen(topo_dir):
    """3.2: among valid fillings, the one whose events are latest."""
    d = topo_dir(seq("abc", step("a"), step("b"), step("c")))
    recs = [
        ev("a1", "c1", "a", "+0"),
        ev("a2", "c1", "a", "+1m"),
        ev("b1", "c1", "b", "+2m"),
        ev("b2", "c1", "b", "+3m"),
        ev("c1e", "c1", "c", "+4m"),
    ]
    assert evidence(replay(d, recs)) == [["a2", "b2", "c1e"]]


def test_3_2_latest_compared_from_the_step_before_last(topo_dir):
    """3.2: the step before the last decides first: a later first-step event after the only
    second-step candidate cannot be used, and must not block the match."""
    d = topo_dir(seq("abc", step("a"), step("b"), step("c")))
    recs = [
        ev("a1", "c1", "a", "+0"),
        ev("b1", "c1", "b", "+1m"),
        ev("a2", "c1", "a", "+2m"),
        ev("c1e", "c1", "c", "+3m"),
    ]
    assert evidence(replay(d, recs)) == [["a1", "b1", "c1e"]]


def test_3_2_backtracking_when_latest_before_last_breaks_an_earlier_within(topo_dir):
    """3.2: the latest b cannot follow any a within 10m -> backtrack to the earlier b."""
    d = topo_dir(seq("abc", step("a"), step("b", within="10m"), step("c", within="30m")))
    recs = [
        ev("a1", "c1", "a", "+0"),
        ev("b1", "c1", "b", "+5m"),
        ev("b2", "c1", "b", "+20m"),
        ev("c1e", "c1", "c", "+25m"),
    ]
    assert brief(replay(d, recs).decisions) == [E("email", "+25m", ["a1", "b1", "c1e"])]


def test_3_2_no_filling_when_no_candidate_keeps_both_withins(topo_dir):
    """3.2: every `within` must hold: the latest b breaks a->b, the earlier b breaks b->c."""
    d = topo_dir(seq("abc", step("a"), step("b", within="10m"), step("c", within="5m")))
    recs = [
        ev("a1", "c1", "a", "+0"),
        ev("b1", "c1", "b", "+8m"),
        ev("b2", "c1", "b", "+12m"),
        ev("c1e", "c1", "c", "+15m"),
    ]
    # b2: c-b2 = 3m ok, b2-a1 = 12m > 10m; b1: b1-a1 ok, c-b1 = 7m > 5m -> no filling at all
    assert replay(d, recs).decisions == []


def test_3_2_backtracking_when_latest_before_last_breaks_unless(topo_dir):
    """3.2: the latest ping leaves the earlier (bad) ping inside the span -> void; the earlier
    ping as step 2 is the match's own event, the later (good) ping does not satisfy the unless
    `where` -> the earlier filling is the match."""
    d = topo_dir(
        seq("opc", step("open"), step("ping"), step("close"), unless={"event": "ping", "where": {"flag": "bad"}})
    )
    recs = [
        ev("o1", "c1", "open", "+0"),
        ev("p1", "c1", "ping", "+1m", flag="bad"),
        ev("p2", "c1", "ping", "+2m", flag="ok"),
        ev("k1", "c1", "close", "+3m"),
    ]
    assert brief(replay(d, recs).decisions) == [E("email", "+3m", ["o1", "p1", "k1"])]


def test_3_2_backtracking_to_an_earlier_first_step_for_whole_span_and_step_within(topo_dir):
    """3.2: with latest b2 no a fits its 5m `within`; with b1 the latest a (a2) fits.
    The chosen filling is (a2, b1, c)."""
    d = topo_dir(seq("abc", step("a"), step("b", within="5m"), step("c"), within="1h"))
    recs = [
        ev("a1", "c1", "a", "+0"),
        ev("a2", "c1", "a", "+10m"),
        ev("b1", "c1", "b", "+12m"),
        ev("b2", "c1", "b", "+30m"),
        ev("c1e", "c1", "c", "+40m"),
    ]
    assert evidence(replay(d, recs)) == [["a2", "b1", "c1e"]]


def test_3_2_one_completing_event_gives_at_most_one_match(topo_dir):
    """3.2: "One completing event gives at most one match per topology"."""
    d = topo_dir(seq("ab", step("a"), step("b")))
    recs = [
        ev("a1", "c1", "a", "+0"),
        ev("a2", "c1", "a", "+1m"),
        ev("a3", "c1", "a", "+2m"),
        ev("b1", "c1", "b", "+3m"),
    ]
    res = replay(d, recs)
    assert evidence(res) == [["a3", "b1"]]
    assert len(res.audit) == 1


def test_3_2_earlier_steps_are_not_consumed_by_a_match(topo_dir):
    """3.2: nothing in the contract consumes earlier steps' events: a second completing
    event matches again with the latest earlier events (cooldown 0)."""
    d = topo_dir(seq("ab", step("a"), step("b")))
    recs = [ev("a1", "c1", "a", "+0"), ev("b1", "c1", "b", "+1m"), ev("b2", "c1", "b", "+2m")]
    assert evidence(replay(d, recs)) == [["a1", "b1"], ["a1", "b2"]]


def test_3_2_out_of_order_earlier_step_does_not_rematch_a_completed_event(topo_dir):
    """3.2: a completing event that already gave a match gives no other, even if a later-
    arriving (on-time) event would make a later filling."""
    d = topo_dir(seq("ab", step("a"), step("b")))
    recs = [ev("a1", "c1", "a", "+0"), ev("b1", "c1", "b", "+5m"), ev("a2", "c1", "a", "+3m")]
    res = replay(d, recs)
    assert res.rejected == []
    assert evidence(res) == [["a1", "b1"]]
    assert len(res.audit) == 1


def test_3_2_out_of_order_completion_by_a_stored_later_event(topo_dir):
    """2 + 3.2: a stored b that could not complete (no a yet) completes when its a arrives."""
    d = topo_dir(seq("ab", step("a"), step("b", within="5m")))
    recs = [ev("b1", "c1", "b", "+4m"), ev("b2", "c1", "b", "+8m"), ev("a1", "c1", "a", "+2m")]
    res = replay(d, recs)
    # a1 (+2m) completes with b1 (+4m, 2m later) and with b2 (+8m, 6m > 5m: no)
    assert brief(res.decisions) == [E("email", "+4m", ["a1", "b1"])]


def test_3_2_out_of_order_completions_each_stored_completing_event(topo_dir):
    """2 + 3.2: an arriving first-step event lets every stored later completing event match, in
    time order. (Suppressions, so that 4.4 arbitration within the one evaluation plays no part.)"""
    d = topo_dir(seq("ab", step("a"), step("b"), then=[suppress(["email"], "1h")]))
    recs = [ev("b1", "c1", "b", "+4m"), ev("b2", "c1", "b", "+8m"), ev("a1", "c1", "a", "+2m")]
    res = replay(d, recs)
    assert brief(res.decisions) == [S("email", "+4m", ["a1", "b1"]), S("email", "+8m", ["a1", "b2"])]
