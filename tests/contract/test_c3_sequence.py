"""Contract section 3.2: `sequence` conditions (within, unless, step order, latest filling).

Every case is one topology, one list of events and the decisions they must make.
Two tables share that shape: DECISIONS pins each decision's kind, channel,
category, effective time and evidence (`brief`); EVIDENCE pins only each match's
evidence, in decision order (an empty list: no decision at all). A case's `rule`
says which sentence of the contract it covers and is shown when it fails.
"""

from __future__ import annotations

import pytest

from .helpers import Case, E, S, brief, case, engage, ev, ms, run_case, suppress, topo


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


ABC = seq("abc", step("a"), step("b"), step("c"))
AB = seq("ab", step("a"), step("b"))
AA = seq("aa", step("a"), step("a"))


def unless_topo(unless_where=None, steps=3):
    u = {"event": "x"}
    if unless_where is not None:
        u["where"] = unless_where
    ss = [step("a"), step("b"), step("c")][:steps]
    return seq("abc", *ss, unless=u)


PING_UNLESS = seq("opc", step("open"), step("ping"), step("close"), unless={"event": "ping"})

DECISIONS = [
    # ------------------------------------------------------------ basic shape
    case(
        "three_step_sequence_matches_in_step_order",
        "3.2: ordered steps; effective time = last event; evidence in step order.",
        ABC,
        [ev("a1", "c1", "a", "+0"), ev("b1", "c1", "b", "+1m"), ev("c1e", "c1", "c", "+2m")],
        [E("email", "+2m", ["a1", "b1", "c1e"])],
    ),
    case(
        "single_step_sequence_matches_every_event",
        "3.2: a one-step sequence is completed by each qualifying event.",
        seq("a", step("a")),
        [ev("a1", "c1", "a", "+0"), ev("a2", "c1", "a", "+1m")],
        [E("email", "+0", ["a1"]), E("email", "+1m", ["a2"])],
    ),
    case(
        "other_events_may_come_between_steps",
        '3.2: "Other events may come between steps" (also events of a later step\'s type).',
        ABC,
        [
            ev("a1", "c1", "a", "+0"),
            ev("x1", "c1", "x", "+1m"),
            ev("c0", "c1", "c", "+2m"),  # a c before any b: cannot complete yet
            ev("y1", "c1", "y", "+3m"),
            ev("b1", "c1", "b", "+4m"),
            ev("x2", "c1", "x", "+5m"),
            ev("c1e", "c1", "c", "+6m"),
        ],
        [E("email", "+6m", ["a1", "b1", "c1e"])],
    ),
    case(
        "one_event_fills_at_most_one_step-two_events",
        '3.2: "one event fills at most one step": two steps of the same type need two events.',
        AA,
        [ev("a1", "c1", "a", "+0"), ev("a2", "c1", "a", "+1m")],
        [E("email", "+1m", ["a1", "a2"])],
    ),
    case(
        "same_type_steps_at_same_instant_use_arrival_order",
        "3.2 + 2: two events of one type at the same instant are distinct and ordered by arrival.",
        AA,
        [ev("a1", "c1", "a", "+0"), ev("a2", "c1", "a", "+0")],
        [E("email", "+0", ["a1", "a2"])],
    ),
    # ----------------------------------------------------------------- within
    case(
        "step_within_is_inclusive",
        '3.2: "Every `within` is inclusive": exactly `within` after the previous step matches.',
        seq("ab", step("a"), step("b", within="10m")),
        [ev("a1", "c1", "a", "+0"), ev("b1", "c1", "b", "+10m")],
        [E("email", "+10m", ["a1", "b1"])],
    ),
    # ---------------------------------------------- latest filling, backtracking
    case(
        "backtracking_when_latest_before_last_breaks_an_earlier_within",
        "3.2: the latest b cannot follow any a within 10m -> backtrack to the earlier b.",
        seq("abc", step("a"), step("b", within="10m"), step("c", within="30m")),
        [
            ev("a1", "c1", "a", "+0"),
            ev("b1", "c1", "b", "+5m"),
            ev("b2", "c1", "b", "+20m"),
            ev("c1e", "c1", "c", "+25m"),
        ],
        [E("email", "+25m", ["a1", "b1", "c1e"])],
    ),
    case(
        "backtracking_when_latest_before_last_breaks_unless",
        "3.2: the latest ping leaves the earlier (bad) ping inside the span -> void; the earlier "
        "ping as step 2 is the match's own event, the later (good) ping does not satisfy the unless "
        "`where` -> the earlier filling is the match.",
        seq("opc", step("open"), step("ping"), step("close"), unless={"event": "ping", "where": {"flag": "bad"}}),
        [
            ev("o1", "c1", "open", "+0"),
            ev("p1", "c1", "ping", "+1m", flag="bad"),
            ev("p2", "c1", "ping", "+2m", flag="ok"),
            ev("k1", "c1", "close", "+3m"),
        ],
        [E("email", "+3m", ["o1", "p1", "k1"])],
    ),
    case(
        "out_of_order_completion_by_a_stored_later_event",
        "2 + 3.2: a stored b that could not complete (no a yet) completes when its a arrives.",
        seq("ab", step("a"), step("b", within="5m")),
        [ev("b1", "c1", "b", "+4m"), ev("b2", "c1", "b", "+8m"), ev("a1", "c1", "a", "+2m")],
        # a1 (+2m) completes with b1 (+4m, 2m later) and with b2 (+8m, 6m > 5m: no)
        [E("email", "+4m", ["a1", "b1"])],
    ),
    case(
        "out_of_order_completions_each_stored_completing_event",
        "2 + 3.2: an arriving first-step event lets every stored later completing event match, in "
        "time order. (Suppressions, so that 4.4 arbitration within the one evaluation plays no part.)",
        seq("ab", step("a"), step("b"), then=[suppress(["email"], "1h")]),
        [ev("b1", "c1", "b", "+4m"), ev("b2", "c1", "b", "+8m"), ev("a1", "c1", "a", "+2m")],
        [S("email", "+4m", ["a1", "b1"]), S("email", "+8m", ["a1", "b2"])],
    ),
]

EVIDENCE = [
    # ------------------------------------------------------------ basic shape
    case(
        "incomplete_sequence_makes_nothing",
        "3.2: no decision until the last step is filled.",
        ABC,
        [ev("a1", "c1", "a", "+0"), ev("b1", "c1", "b", "+1m")],
        [],
        until=ms("+1d"),
        audit=0,
    ),
    case(
        "sequences_are_per_customer",
        "3.2: steps are filled by one customer's events only.",
        AB,
        [ev("a1", "c1", "a", "+0"), ev("b1", "c2", "b", "+1m")],
        [],
    ),
    case(
        "step_order_matters",
        "3.2: \"A step's event may not be earlier than the previous step's event\".",
        AB,
        [ev("b1", "c1", "b", "+0"), ev("a1", "c1", "a", "+1m")],
        [],
    ),
    case(
        "step_order_by_occurred_at_even_if_arrival_is_in_step_order",
        "3.2 + 2: b 1 ms earlier than a (arriving after a) is earlier: no match.",
        AB,
        [ev("a1", "c1", "a", "+1m"), ev("b1", "c1", "b", ms("+1m") - 1)],
        [],
    ),
    case(
        "one_event_fills_at_most_one_step-one_event",
        '3.2: "one event fills at most one step": two steps of the same type need two events.',
        AA,
        [ev("a1", "c1", "a", "+0")],
        [],
    ),
    case(
        "three_same_type_steps",
        "3.2: three steps of one type: a third event completes (x1, x2, x3); further ones use the latest.",
        seq("xxx", step("x"), step("x"), step("x")),
        [ev(f"x{i}", "c1", "x", f"+{i}m") for i in range(1, 5)],
        [["x1", "x2", "x3"], ["x2", "x3", "x4"]],
    ),
    case(
        "where_on_a_step",
        "3.2 + 3.1: a step's `where` filters which events can fill it.",
        seq("ab", step("a", where={"k": "yes"}), step("b")),
        [
            ev("a1", "c1", "a", "+0", k="no"),
            ev("b1", "c1", "b", "+1m"),
            ev("a2", "c1", "a", "+2m", k="yes"),
            ev("b2", "c1", "b", "+3m"),
        ],
        [["a2", "b2"]],
    ),
    # ----------------------------------------------------------------- within
    case(
        "step_within_exceeded_by_one_ms",
        "3.2: step within: 1 ms too late -> no match.",
        seq("ab", step("a"), step("b", within="10m")),
        [ev("a1", "c1", "a", "+0"), ev("b1", "c1", "b", ms("+10m") + 1)],
        [],
    ),
    case(
        "step_within_is_measured_from_the_previous_step_not_the_first",
        "3.2: a step's `within` is \"the most time allowed since the previous step's event\".",
        seq("abc", step("a"), step("b", within="10m"), step("c", within="10m")),
        [ev("a1", "c1", "a", "+0"), ev("b1", "c1", "b", "+10m"), ev("c1e", "c1", "c", "+20m")],
        [["a1", "b1", "c1e"]],
    ),
    case(
        "whole_span_within_is_inclusive",
        "3.2: `when.within` bounds first-to-last, inclusive.",
        seq("abc", step("a"), step("b"), step("c"), within="1h"),
        [ev("a1", "c1", "a", "+0"), ev("b1", "c1", "b", "+30m"), ev("c1e", "c1", "c", "+1h")],
        [["a1", "b1", "c1e"]],
    ),
    case(
        "whole_span_within_exceeded",
        "3.2: whole-span within exceeded by 1 ms -> no match, though every step gap is small.",
        seq("abc", step("a"), step("b", within="40m"), step("c", within="40m"), within="1h"),
        [ev("a1", "c1", "a", "+0"), ev("b1", "c1", "b", "+30m"), ev("c1e", "c1", "c", ms("+1h") + 1)],
        [],
    ),
    case(
        "whole_span_within_picks_a_later_first_event",
        "3.2: with an old a and a recent a, the span rule is met by the recent one.",
        seq("ab", step("a"), step("b"), within="30m"),
        [ev("a1", "c1", "a", "+0"), ev("a2", "c1", "a", "+20m"), ev("b1", "c1", "b", "+45m")],
        [["a2", "b1"]],
    ),
    # ----------------------------------------------------------------- unless
    case(
        "unless_between_first_and_last_voids",
        "3.2 unless: an `unless` event after the first step and before the last voids the match.",
        unless_topo(),
        [
            ev("a1", "c1", "a", "+0"),
            ev("b1", "c1", "b", "+1m"),
            ev("x1", "c1", "x", "+2m"),
            ev("c1e", "c1", "c", "+3m"),
        ],
        [],
    ),
    case(
        "unless_between_first_and_second_step_voids",
        "3.2 unless: the window is first-to-last, not only the last gap.",
        unless_topo(),
        [
            ev("a1", "c1", "a", "+0"),
            ev("x1", "c1", "x", "+1m"),
            ev("b1", "c1", "b", "+2m"),
            ev("c1e", "c1", "c", "+3m"),
        ],
        [],
    ),
    case(
        "unless_before_first_step_does_not_void",
        "3.2 unless: an `unless` event before the first step's event does not count.",
        unless_topo(),
        [
            ev("x1", "c1", "x", "-1m"),
            ev("a1", "c1", "a", "+0"),
            ev("b1", "c1", "b", "+1m"),
            ev("c1e", "c1", "c", "+2m"),
        ],
        [["a1", "b1", "c1e"]],
    ),
    case(
        "unless_at_the_first_steps_instant_but_before_it_does_not_void",
        "3.2 + 2: same occurred_at as the first step but arriving before it -> not after it.",
        unless_topo(),
        [
            ev("x1", "c1", "x", "+0"),
            ev("a1", "c1", "a", "+0"),
            ev("b1", "c1", "b", "+1m"),
            ev("c1e", "c1", "c", "+2m"),
        ],
        [["a1", "b1", "c1e"]],
    ),
    case(
        "unless_at_the_first_steps_instant_after_it_voids",
        "3.2 + notes: same occurred_at as the first step, arriving after it -> after it -> void.",
        unless_topo(),
        [
            ev("a1", "c1", "a", "+0"),
            ev("x1", "c1", "x", "+0"),
            ev("b1", "c1", "b", "+1m"),
            ev("c1e", "c1", "c", "+2m"),
        ],
        [],
    ),
    case(
        "unless_at_the_last_steps_instant_voids",
        '3.2 unless: "at or before the last step\'s event" -> same instant as the last step voids.',
        unless_topo(),
        [
            ev("a1", "c1", "a", "+0"),
            ev("b1", "c1", "b", "+1m"),
            ev("x1", "c1", "x", "+2m"),
            ev("c1e", "c1", "c", "+2m"),
        ],
        [],
    ),
    case(
        "unless_after_last_step_does_not_void",
        "3.2 unless: 1 ms after the last step (arriving before it, out of order) does not void.",
        unless_topo(),
        [
            ev("a1", "c1", "a", "+0"),
            ev("b1", "c1", "b", "+1m"),
            ev("x1", "c1", "x", ms("+2m") + 1),
            ev("c1e", "c1", "c", "+2m"),
        ],
        [["a1", "b1", "c1e"]],
        rejected=[],
    ),
    case(
        "unless_where_must_hold-not_matching",
        "3.2 unless is a `{event, where}` test: a non-matching `unless` event does not void.",
        unless_topo(unless_where={"ok": "true"}),
        [
            ev("a1", "c1", "a", "+0"),
            ev("x1", "c1", "x", "+1m", ok="false"),
            ev("b1", "c1", "b", "+2m"),
            ev("c1e", "c1", "c", "+3m"),
        ],
        [["a1", "b1", "c1e"]],
    ),
    case(
        "unless_where_must_hold-matching",
        "3.2 unless is a `{event, where}` test: a matching `unless` event voids.",
        unless_topo(unless_where={"ok": "true"}),
        [
            ev("a1", "c1", "a", "+0"),
            ev("x1", "c1", "x", "+1m", ok="true"),
            ev("b1", "c1", "b", "+2m"),
            ev("c1e", "c1", "c", "+3m"),
        ],
        [],
    ),
    case(
        "unless_of_another_customer_does_not_void",
        "3.2 unless: only the customer's own events count.",
        unless_topo(),
        [
            ev("a1", "c1", "a", "+0"),
            ev("x1", "c2", "x", "+1m"),
            ev("b1", "c1", "b", "+2m"),
            ev("c1e", "c1", "c", "+3m"),
        ],
        [["a1", "b1", "c1e"]],
    ),
    case(
        "unless_ignores_the_matchs_own_events",
        '3.2 unless: "other than the match\'s own events": a step event of the unless type does not void.',
        PING_UNLESS,
        [ev("o1", "c1", "open", "+0"), ev("p1", "c1", "ping", "+1m"), ev("k1", "c1", "close", "+2m")],
        [["o1", "p1", "k1"]],
    ),
    case(
        "unless_counts_events_of_a_step_type_that_are_not_in_the_match",
        "3.2 unless: a second ping inside the span is not the match's own -> every filling is void.",
        PING_UNLESS,
        [
            ev("o1", "c1", "open", "+0"),
            ev("p1", "c1", "ping", "+1m"),
            ev("p2", "c1", "ping", "+2m"),
            ev("k1", "c1", "close", "+3m"),
        ],
        [],
    ),
    case(
        "unless_last_step_type_is_own_event",
        "3.2 unless: the completing event itself never voids its own match.",
        seq("ab", step("a"), step("b"), unless={"event": "b"}),
        [ev("a1", "c1", "a", "+0"), ev("b1", "c1", "b", "+1m")],
        [["a1", "b1"]],
    ),
    case(
        "unless_voided_candidate_leaves_room_for_a_later_match",
        "Notes: a match voided by `unless` records nothing; a later first-step event can still match.",
        seq("ab", step("a"), step("b"), unless={"event": "x"}),
        [
            ev("a1", "c1", "a", "+0"),
            ev("x1", "c1", "x", "+1m"),
            ev("b1", "c1", "b", "+2m"),
            ev("a2", "c1", "a", "+3m"),
            ev("b2", "c1", "b", "+4m"),
        ],
        [["a2", "b2"]],
    ),
    # ---------------------------------------------- latest filling, backtracking
    case(
        "latest_filling_is_chosen",
        "3.2: among valid fillings, the one whose events are latest.",
        ABC,
        [
            ev("a1", "c1", "a", "+0"),
            ev("a2", "c1", "a", "+1m"),
            ev("b1", "c1", "b", "+2m"),
            ev("b2", "c1", "b", "+3m"),
            ev("c1e", "c1", "c", "+4m"),
        ],
        [["a2", "b2", "c1e"]],
    ),
    case(
        "latest_compared_from_the_step_before_last",
        "3.2: the step before the last decides first: a later first-step event after the only "
        "second-step candidate cannot be used, and must not block the match.",
        ABC,
        [
            ev("a1", "c1", "a", "+0"),
            ev("b1", "c1", "b", "+1m"),
            ev("a2", "c1", "a", "+2m"),
            ev("c1e", "c1", "c", "+3m"),
        ],
        [["a1", "b1", "c1e"]],
    ),
    case(
        "no_filling_when_no_candidate_keeps_both_withins",
        "3.2: every `within` must hold: the latest b breaks a->b, the earlier b breaks b->c.",
        seq("abc", step("a"), step("b", within="10m"), step("c", within="5m")),
        [
            ev("a1", "c1", "a", "+0"),
            ev("b1", "c1", "b", "+8m"),
            ev("b2", "c1", "b", "+12m"),
            ev("c1e", "c1", "c", "+15m"),
        ],
        # b2: c-b2 = 3m ok, b2-a1 = 12m > 10m; b1: b1-a1 ok, c-b1 = 7m > 5m -> no filling at all
        [],
    ),
    case(
        "backtracking_to_an_earlier_first_step_for_whole_span_and_step_within",
        "3.2: with latest b2 no a fits its 5m `within`; with b1 the latest a (a2) fits. "
        "The chosen filling is (a2, b1, c).",
        seq("abc", step("a"), step("b", within="5m"), step("c"), within="1h"),
        [
            ev("a1", "c1", "a", "+0"),
            ev("a2", "c1", "a", "+10m"),
            ev("b1", "c1", "b", "+12m"),
            ev("b2", "c1", "b", "+30m"),
            ev("c1e", "c1", "c", "+40m"),
        ],
        [["a2", "b1", "c1e"]],
    ),
    case(
        "one_completing_event_gives_at_most_one_match",
        '3.2: "One completing event gives at most one match per topology".',
        AB,
        [
            ev("a1", "c1", "a", "+0"),
            ev("a2", "c1", "a", "+1m"),
            ev("a3", "c1", "a", "+2m"),
            ev("b1", "c1", "b", "+3m"),
        ],
        [["a3", "b1"]],
        audit=1,
    ),
    case(
        "earlier_steps_are_not_consumed_by_a_match",
        "3.2: nothing in the contract consumes earlier steps' events: a second completing "
        "event matches again with the latest earlier events (cooldown 0).",
        AB,
        [ev("a1", "c1", "a", "+0"), ev("b1", "c1", "b", "+1m"), ev("b2", "c1", "b", "+2m")],
        [["a1", "b1"], ["a1", "b2"]],
    ),
    case(
        "out_of_order_earlier_step_does_not_rematch_a_completed_event",
        "3.2: a completing event that already gave a match gives no other, even if a later-"
        "arriving (on-time) event would make a later filling.",
        AB,
        [ev("a1", "c1", "a", "+0"), ev("b1", "c1", "b", "+5m"), ev("a2", "c1", "a", "+3m")],
        [["a1", "b1"]],
        rejected=[],
        audit=1,
    ),
]


@pytest.mark.parametrize("c", DECISIONS)
def test_3_2_decisions(topo_dir, c: Case) -> None:
    """3.2: the case's events make exactly these decisions (kind, channel, category, time, evidence)."""
    assert brief(run_case(topo_dir, c).decisions) == c.expect, c.rule


@pytest.mark.parametrize("c", EVIDENCE)
def test_3_2_evidence(topo_dir, c: Case) -> None:
    """3.2: the case's events make decisions with exactly this evidence, in order ([]: none)."""
    assert evidence(run_case(topo_dir, c)) == c.expect, c.rule
