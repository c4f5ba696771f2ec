"""Contract section 4.4: arbitration, cooldown and idempotence."""

from __future__ import annotations

from .helpers import E, brief, counts, engage, ev, ms, on, pick, replay, suppress, topo


def eng_audit(res):
    return [(a["topology"], a["channel"], a["status"], a["cause"]) for a in pick(res.audit, kind="ENGAGE")]


def decision_id(res, topology, kind="ENGAGE"):
    [a] = [x for x in res.audit if x["topology"] == topology and x["kind"] == kind]
    return a["decision_id"]


# ---------------------------------------------------------------- arbitration


def test_4_4_highest_priority_engagement_per_channel_wins(topo_dir):
    """4.4: among standing engagements of one customer and channel, only the highest priority is
    kept; the others are outranked (cause: the rival's decision id)."""
    d = topo_dir(
        on("alpha", "go", [engage("sms", "low")], priority=50),
        on("zeta", "go", [engage("sms", "high")], priority=60),
    )
    res = replay(d, [ev("g1", "c1", "go", "+0")])
    assert brief(res.decisions, "topology", "action") == [(*E("sms", "+0", ["g1"]), "zeta", "high")]
    zid = decision_id(res, "zeta")
    assert sorted(eng_audit(res)) == [
        ("alpha", "sms", "outranked", f"outranked_by {zid}"),
        ("zeta", "sms", "emitted", None),
    ]
    assert counts(res.summary)["ENGAGE"] == {"emitted": 1, "outranked": 1}


def test_4_4_three_way_arbitration(topo_dir):
    """4.4: with three rivals, both losers are outranked by the single winner."""
    d = topo_dir(
        on("a", "go", [engage("sms", "x")], priority=10),
        on("b", "go", [engage("sms", "y")], priority=70),
        on("c", "go", [engage("sms", "z")], priority=40),
    )
    res = replay(d, [ev("g1", "c1", "go", "+0")])
    bid = decision_id(res, "b")
    assert sorted(eng_audit(res)) == [
        ("a", "sms", "outranked", f"outranked_by {bid}"),
        ("b", "sms", "emitted", None),
        ("c", "sms", "outranked", f"outranked_by {bid}"),
    ]


def test_4_4_priority_ties_broken_by_topology_name(topo_dir):
    """4.4 + notes: equal priority -> the one applied first (by topology name) wins."""
    d = topo_dir(
        on("beta", "go", [engage("sms", "b")], priority=50),
        on("alpha", "go", [engage("sms", "a")], priority=50),
    )
    res = replay(d, [ev("g1", "c1", "go", "+0")])
    assert [(x["topology"], x["action"]) for x in res.decisions] == [("alpha", "a")]
    aid = decision_id(res, "alpha")
    assert sorted(eng_audit(res)) == [
        ("alpha", "sms", "emitted", None),
        ("beta", "sms", "outranked", f"outranked_by {aid}"),
    ]


def test_4_4_ties_within_one_topology_first_written_wins(topo_dir):
    """Notes: equal priority within one topology -> the action written first wins."""
    d = topo_dir(on("t", "go", [engage("sms", "first"), engage("sms", "second")]))
    res = replay(d, [ev("g1", "c1", "go", "+0")])
    assert [x["action"] for x in res.decisions] == ["first"]
    assert sorted((a["action"], a["status"]) for a in pick(res.audit, kind="ENGAGE")) == [
        ("first", "emitted"),
        ("second", "outranked"),
    ]


def test_4_4_different_channels_are_not_rivals(topo_dir):
    """4.4: arbitration is per customer *and channel*."""
    d = topo_dir(
        on("alpha", "go", [engage("sms", "x")], priority=50),
        on("zeta", "go", [engage("email", "y")], priority=60),
    )
    res = replay(d, [ev("g1", "c1", "go", "+0")])
    assert brief(res.decisions, "topology") == [
        (*E("sms", "+0", ["g1"]), "alpha"),
        (*E("email", "+0", ["g1"]), "zeta"),
    ]


def test_4_4_different_evaluations_are_not_rivals(topo_dir):
    """4.4: one evaluation is what one arriving event causes: engagements of two events are
    not arbitrated against each other."""
    d = topo_dir(
        on("alpha", "go", [engage("sms", "x")], priority=50),
        on("zeta", "go2", [engage("sms", "y")], priority=60),
    )
    res = replay(d, [ev("g1", "c1", "go", "+0"), ev("g2", "c1", "go2", "+0")])
    assert brief(res.decisions, "topology") == [
        (*E("sms", "+0", ["g1"]), "alpha"),
        (*E("sms", "+0", ["g2"]), "zeta"),
    ]


def test_4_4_blocked_engagement_is_not_standing(topo_dir):
    """4.4: only engagements "still standing" compete: a higher-priority engagement blocked by a
    suppression does not outrank a lower one of another category."""
    d = topo_dir(
        on("guard", "go", [suppress(["sms"], "1d", category="shoes")], priority=90),
        on("mid", "go", [engage("sms", "shoe_sale", category="shoes")], priority=60),
        on("low", "go", [engage("sms", "bag_sale", category="bags")], priority=50),
    )
    res = replay(d, [ev("g1", "c1", "go", "+0")])
    sid = decision_id(res, "guard", "SUPPRESS")
    assert [(x["topology"], x["kind"]) for x in res.decisions] == [("guard", "SUPPRESS"), ("low", "ENGAGE")]
    assert sorted(eng_audit(res)) == [
        ("low", "sms", "emitted", None),
        ("mid", "sms", "blocked", f"suppressed_by {sid}"),
    ]


def test_4_4_cap_checked_on_winner_and_does_not_promote_runner_up(topo_dir):
    """4.4: caps are checked last, on the winner; a winner blocked by a cap does not promote the
    runner-up (which stays outranked)."""
    d = topo_dir(
        on("first", "pre", [engage("sms", "x")]),
        on("hi", "go", [engage("sms", "h")], priority=60),
        on("lo", "go", [engage("sms", "l")], priority=50),
        policies={"frequency_caps": [{"channel": "sms", "max": 1, "per": "1d"}]},
    )
    res = replay(d, [ev("p1", "c1", "pre", "+0"), ev("g1", "c1", "go", "+1h")])
    assert brief(res.decisions) == [E("sms", "+0", ["p1"])]
    hid = decision_id(res, "hi")
    assert sorted(eng_audit(res)) == [
        ("first", "sms", "emitted", None),
        ("hi", "sms", "blocked", "cap sms max 1 per 1d"),
        ("lo", "sms", "outranked", f"outranked_by {hid}"),
    ]


def test_4_4_outranked_engagement_does_not_count_for_caps(topo_dir):
    """4.2 + 4.4: outranked engagements are not emitted, so a cap of 1 still lets the next one through."""
    d = topo_dir(
        on("hi", "go", [engage("sms", "h")], priority=60),
        on("lo", "go", [engage("sms", "l")], priority=50),
        on("later", "next", [engage("sms", "n")]),
        policies={"frequency_caps": [{"channel": "sms", "max": 2, "per": "1d"}]},
    )
    res = replay(d, [ev("g1", "c1", "go", "+0"), ev("n1", "c1", "next", "+1h")])
    assert [(x["topology"], x["evidence"]) for x in res.decisions] == [("hi", ["g1"]), ("later", ["n1"])]


def test_4_4_deadlines_of_one_customer_at_one_instant_are_one_evaluation(topo_dir):
    """4.4: everything one customer's deadlines at the same instant cause is one evaluation ->
    two absence topologies engaging sms at the same deadline are arbitrated."""

    def absent(name, prio):
        return topo(
            name,
            {"absence": {"after": {"event": "cart"}, "missing": {"event": "buy"}, "for": "1h"}},
            [engage("sms", f"from_{name}")],
            priority=prio,
        )

    d = topo_dir(absent("alpha", 40), absent("zeta", 70))
    res = replay(d, [ev("k1", "c1", "cart", "+0")], until=ms("+2h"))
    assert brief(res.decisions, "topology") == [(*E("sms", "+1h", ["k1"]), "zeta")]
    zid = decision_id(res, "zeta")
    assert sorted(eng_audit(res)) == [
        ("alpha", "sms", "outranked", f"outranked_by {zid}"),
        ("zeta", "sms", "emitted", None),
    ]


def test_4_4_deadlines_of_one_customer_at_one_instant_from_two_after_events(topo_dir):
    """4.4: two `after` events of different topologies whose deadlines coincide -> one evaluation."""
    d = topo_dir(
        topo(
            "alpha",
            {"absence": {"after": {"event": "cart"}, "missing": {"event": "buy"}, "for": "1h"}},
            [engage("sms", "a")],
            priority=40,
        ),
        topo(
            "zeta",
            {"absence": {"after": {"event": "view"}, "missing": {"event": "buy"}, "for": "30m"}},
            [engage("sms", "z")],
            priority=70,
        ),
    )
    res = replay(d, [ev("k1", "c1", "cart", "+0"), ev("v1", "c1", "view", "+30m")], until=ms("+2h"))
    assert brief(res.decisions, "topology") == [(*E("sms", "+1h", ["v1"]), "zeta")]
    assert sorted((t, s) for t, _, s, _ in eng_audit(res)) == [("alpha", "outranked"), ("zeta", "emitted")]


def test_4_4_different_customers_deadlines_are_separate_evaluations(topo_dir):
    """4.4: deadlines of *one customer* form an evaluation; two customers never compete."""
    d = topo_dir(
        topo(
            "alpha",
            {"absence": {"after": {"event": "cart"}, "missing": {"event": "buy"}, "for": "1h"}},
            [engage("sms", "a")],
        ),
    )
    res = replay(d, [ev("k1", "c1", "cart", "+0"), ev("k2", "c2", "cart", "+0")], until=ms("+2h"))
    assert [(x["customer_id"], x["evidence"]) for x in res.decisions] == [("c1", ["k1"]), ("c2", ["k2"])]


# ------------------------------------------------------------------- cooldown


def cool(cooldown="1h", name="promo", event="go", channel="email"):
    return on(name, event, [engage(channel, "sale")], cooldown=cooldown)


def test_4_4_cooldown_holds_back_matches_before_t_plus_cooldown(topo_dir):
    """4.4: after firing at t, no firing for matches effective before t + cooldown."""
    d = topo_dir(cool())
    recs = [ev("g1", "c1", "go", "+0"), ev("g2", "c1", "go", "+30m"), ev("g3", "c1", "go", ms("+1h") - 1)]
    assert [x["evidence"] for x in replay(d, recs).decisions] == [["g1"]]


def test_4_4_cooldown_allows_a_match_at_exactly_t_plus_cooldown(topo_dir):
    """4.4: a match effective at t + cooldown is not "before" it -> fires."""
    d = topo_dir(cool())
    recs = [ev("g1", "c1", "go", "+0"), ev("g2", "c1", "go", "+30m"), ev("g3", "c1", "go", "+1h")]
    assert [x["evidence"] for x in replay(d, recs).decisions] == [["g1"], ["g3"]]


def test_4_4_cooldown_restarts_from_the_latest_firing(topo_dir):
    """4.4: cooldown counts from the last firing, not from a held-back match."""
    d = topo_dir(cool())
    recs = [
        ev("g1", "c1", "go", "+0"),
        ev("g2", "c1", "go", "+1h"),
        ev("g3", "c1", "go", "+1h59m"),
        ev("g4", "c1", "go", "+2h"),
    ]
    assert [x["evidence"] for x in replay(d, recs).decisions] == [["g1"], ["g2"], ["g4"]]


def test_4_4_cooldown_is_per_customer(topo_dir):
    """4.4: "does not fire again *for that customer*"."""
    d = topo_dir(cool())
    res = replay(d, [ev("g1", "c1", "go", "+0"), ev("g2", "c2", "go", "+1m")])
    assert [x["customer_id"] for x in res.decisions] == ["c1", "c2"]


def test_4_4_cooldown_is_per_topology(topo_dir):
    """4.4: "after *a topology* fires": another topology is not held back."""
    d = topo_dir(cool(name="one"), cool(name="two", event="go2", channel="push"))
    res = replay(d, [ev("g1", "c1", "go", "+0"), ev("g2", "c1", "go2", "+1m")])
    assert [x["topology"] for x in res.decisions] == ["one", "two"]


def test_4_4_cooldown_holds_back_earlier_matches_found_late(topo_dir):
    """4.4: "This includes earlier matches found late, out of order": a match effective before
    the last firing's time + cooldown does not fire."""
    d = topo_dir(cool(), policies={"lateness": "2h"})
    res = replay(d, [ev("g1", "c1", "go", "+1h"), ev("g0", "c1", "go", "+10m")])
    assert res.rejected == []
    assert [x["evidence"] for x in res.decisions] == [["g1"]]


def test_4_4_default_cooldown_zero_still_holds_back_earlier_matches_found_late(topo_dir):
    """4.4 (cooldown default 0): effective before t + 0 = t -> an earlier match found late does not fire."""
    d = topo_dir(on("promo", "go", [engage("email", "sale")]), policies={"lateness": "1h"})
    res = replay(d, [ev("g1", "c1", "go", "+30m"), ev("g0", "c1", "go", "+10m")])
    assert res.rejected == []
    assert [x["evidence"] for x in res.decisions] == [["g1"]]


def test_4_4_default_cooldown_zero_allows_same_instant(topo_dir):
    """4.4: cooldown 0: a second match at the same effective time is not before t + 0 -> fires."""
    d = topo_dir(on("promo", "go", [engage("email", "sale")]))
    res = replay(d, [ev("g1", "c1", "go", "+0"), ev("g2", "c1", "go", "+0")])
    assert [x["evidence"] for x in res.decisions] == [["g1"], ["g2"]]


def test_4_4_cooldown_counts_firing_even_when_all_decisions_blocked(topo_dir):
    """Notes: a match that passes cooldown fires even if its decisions are blocked; a match held
    back by cooldown is not audited."""
    d = topo_dir(
        on("guard", "sup", [suppress(["email"], "30m")], priority=90),
        cool(),
    )
    recs = [
        ev("s1", "c1", "sup", "+0"),
        ev("g1", "c1", "go", "+10m"),
        ev("g2", "c1", "go", "+50m"),
        ev("g3", "c1", "go", "+1h10m"),
    ]
    res = replay(d, recs)
    assert [x["evidence"] for x in pick(res.decisions, kind="ENGAGE")] == [["g3"]]
    assert [(a["evidence"], a["status"]) for a in pick(res.audit, kind="ENGAGE")] == [
        (["g1"], "blocked"),
        (["g3"], "emitted"),
    ]


def test_4_4_cooldown_applies_to_sequences_by_effective_time(topo_dir):
    """4.4: cooldown compares effective times (the last event's time) of sequence matches."""
    d = topo_dir(topo("ab", {"sequence": [{"event": "a"}, {"event": "b"}]}, [engage("email", "x")], cooldown="1h"))
    recs = [
        ev("a1", "c1", "a", "+0"),
        ev("b1", "c1", "b", "+10m"),
        ev("a2", "c1", "a", "+20m"),
        ev("b2", "c1", "b", "+1h9m"),
        ev("b3", "c1", "b", "+1h10m"),
    ]
    assert [x["evidence"] for x in replay(d, recs).decisions] == [["a1", "b1"], ["a2", "b3"]]


# ---------------------------------------------------------------- idempotence


def test_4_4_same_input_twice_in_one_run_fires_once(topo_dir):
    """4.4: the same match never fires twice, whatever is replayed or redelivered."""
    d = topo_dir(
        topo("ab", {"sequence": [{"event": "a"}, {"event": "b"}]}, [engage("email", "x")]),
        on("p", "ping", [engage("push", "y")]),
    )
    recs = [ev("a1", "c1", "a", "+0"), ev("b1", "c1", "b", "+1m"), ev("p1", "c1", "ping", "+2m")]
    once = replay(d, recs)
    twice = replay(d, recs + recs)
    assert twice.decisions == once.decisions
    assert [x["evidence"] for x in twice.decisions] == [["a1", "b1"], ["p1"]]
    assert twice.summary["duplicates"] == 3
    assert twice.rejected == []


def test_4_4_redelivered_completing_event_fires_once(topo_dir):
    """4.4: a redelivered completing event (same id) does not fire the match again."""
    d = topo_dir(topo("ab", {"sequence": [{"event": "a"}, {"event": "b"}]}, [engage("email", "x")]))
    recs = [
        ev("a1", "c1", "a", "+0"),
        ev("b1", "c1", "b", "+1m"),
        ev("x", "c1", "noise", "+5m"),
        ev("b1", "c1", "b", "+1m"),
    ]
    res = replay(d, recs)
    assert [x["evidence"] for x in res.decisions] == [["a1", "b1"]]
    assert res.summary["duplicates"] == 1


def test_4_4_redelivered_after_event_arms_one_deadline(topo_dir):
    """4.4: a redelivered absence `after` event does not make a second match."""
    d = topo_dir(
        topo(
            "ab",
            {"absence": {"after": {"event": "cart"}, "missing": {"event": "buy"}, "for": "1h"}},
            [engage("email", "x")],
        )
    )
    recs = [ev("k1", "c1", "cart", "+0"), ev("k1", "c1", "cart", "+0")]
    res = replay(d, recs, until=ms("+2h"))
    assert [x["evidence"] for x in res.decisions] == [["k1"]]


def test_4_4_redelivered_count_event_fires_once(topo_dir):
    """4.4: redelivery of a count's completing event makes no second match."""
    d = topo_dir(topo("c", {"count": {"event": "f", "at_least": 2, "within": "1h"}}, [engage("email", "x")]))
    recs = [ev("f1", "c1", "f", "+0"), ev("f2", "c1", "f", "+1m"), ev("f2", "c1", "f", "+1m")]
    res = replay(d, recs)
    assert [x["evidence"] for x in res.decisions] == [["f1", "f2"]]


def test_4_4_replaying_the_same_input_gives_the_same_output(topo_dir):
    """4.4 + 5: two runs over the same input give identical decisions (ids included)."""
    d = topo_dir(
        on("g", "go", [suppress(["ads", "email"], "1d"), engage("sms", "x", expires="1h")]),
        topo("ab", {"sequence": [{"event": "a"}, {"event": "b"}]}, [engage("push", "y")]),
    )
    recs = [ev("g1", "c1", "go", "+0"), ev("a1", "c2", "a", "+1m"), ev("b1", "c2", "b", "+2m")]
    r1, r2 = replay(d, recs), replay(d, recs)
    assert r1.decisions == r2.decisions
    assert r1.audit == r2.audit
    assert len(r1.decisions) == 4


def test_4_4_voided_match_does_not_start_cooldown(topo_dir):
    """3.2 + 4.4 + notes: a candidate voided by `unless` is no match, so it does not fire and does
    not hold back a later match through cooldown."""
    d = topo_dir(
        topo(
            "ab",
            {"sequence": [{"event": "a"}, {"event": "b"}], "unless": {"event": "x"}},
            [engage("email", "x")],
            cooldown="1h",
        )
    )
    recs = [
        ev("a1", "c1", "a", "+0"),
        ev("x1", "c1", "x", "+1m"),
        ev("b1", "c1", "b", "+2m"),
        ev("a2", "c1", "a", "+3m"),
        ev("b2", "c1", "b", "+4m"),
    ]
    res = replay(d, recs)
    assert [x["evidence"] for x in res.decisions] == [["a2", "b2"]]
    assert len(res.audit) == 1


def test_4_4_deadline_and_event_are_separate_evaluations(topo_dir):
    """4.4: the deadline that an event's arrival makes fire is its own evaluation (one customer's
    deadlines at one instant), not part of the arriving event's: no arbitration between them."""
    d = topo_dir(
        topo(
            "abs",
            {"absence": {"after": {"event": "cart"}, "missing": {"event": "buy"}, "for": "1h"}},
            [engage("sms", "remind")],
            priority=40,
        ),
        on("hot", "go", [engage("sms", "offer")], priority=90),
    )
    res = replay(d, [ev("k1", "c1", "cart", "+0"), ev("g1", "c1", "go", "+1h10m")])
    assert brief(res.decisions, "topology") == [
        (*E("sms", "+1h", ["k1"]), "abs"),
        (*E("sms", "+1h10m", ["g1"]), "hot"),
    ]
