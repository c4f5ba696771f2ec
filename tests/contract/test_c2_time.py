"""Contract section 2: event time, stream time, watermark, lateness, timers, durations."""

from __future__ import annotations

import pytest

from .helpers import BASE_MS, Case, E, R, S, brief, case, engage, ev, iso, ms, on, replay, run_case, suppress, topo


def seq(name, *steps, within=None, unless=None, then=None, **kw):
    when = {"sequence": list(steps)}
    if within is not None:
        when["within"] = within
    if unless is not None:
        when["unless"] = unless
    return topo(name, when, then or [engage("email")], **kw)


def absence(name, after="cart", missing="purchase", for_="1h", then=None, **kw):
    return topo(
        name,
        {"absence": {"after": {"event": after, "as": "a"}, "missing": {"event": missing}, "for": for_}},
        then or [engage("email", "remind")],
        **kw,
    )


# ----------------------------------------------------------------- event time


def test_2_matching_uses_event_time_not_arrival(topo_dir):
    """2: event time, not arrival: b (t+1m) arriving before a (t) still completes a -> b."""
    d = topo_dir(seq("ab", {"event": "a"}, {"event": "b", "within": "5m"}))
    res = replay(d, [ev("b1", "c1", "b", "+1m"), ev("a1", "c1", "a", "+0")])
    assert brief(res.decisions) == [E("email", "+1m", ["a1", "b1"])]


def test_2_same_occurred_at_ordered_by_arrival_in_order(topo_dir):
    """2: equal occurred_at -> ordered by arrival; a then b at the same instant matches a -> b."""
    d = topo_dir(seq("ab", {"event": "a"}, {"event": "b"}))
    res = replay(d, [ev("a1", "c1", "a", "+0"), ev("b1", "c1", "b", "+0")])
    assert brief(res.decisions) == [E("email", "+0", ["a1", "b1"])]


def test_2_same_occurred_at_ordered_by_arrival_reversed(topo_dir):
    """2 + 3.2: b arriving before a at the same instant is *earlier* than a, so a -> b does not match."""
    d = topo_dir(seq("ab", {"event": "a"}, {"event": "b"}))
    res = replay(d, [ev("b1", "c1", "b", "+0"), ev("a1", "c1", "a", "+0")])
    assert res.decisions == []


def test_2_out_of_order_middle_step_arriving_last_completes(topo_dir):
    """2: "a sequence completes when its last missing event arrives, whatever order"."""
    d = topo_dir(seq("abc", {"event": "a"}, {"event": "b"}, {"event": "c"}))
    recs = [ev("a1", "c1", "a", "+0"), ev("c1e", "c1", "c", "+2m"), ev("b1", "c1", "b", "+1m")]
    res = replay(d, recs)
    assert brief(res.decisions) == [E("email", "+2m", ["a1", "b1", "c1e"])]


def test_2_out_of_order_first_step_arriving_last_completes(topo_dir):
    """2: all later steps first, then the first step: effective time is still the last step's time."""
    d = topo_dir(seq("abc", {"event": "a"}, {"event": "b"}, {"event": "c"}))
    recs = [ev("c1e", "c1", "c", "+3m"), ev("b1", "c1", "b", "+2m"), ev("a1", "c1", "a", "+1m")]
    res = replay(d, recs)
    assert brief(res.decisions) == [E("email", "+3m", ["a1", "b1", "c1e"])]


# ------------------------------------------------------- watermark and late


@pytest.fixture
def ping_dir(topo_dir):
    return topo_dir(on("ping_t", "ping", [engage("email")]))


def test_2_event_before_watermark_is_late(ping_dir):
    """2: watermark = stream time - lateness (default 10m); occurred_at before it -> late, dead-lettered."""
    recs = [ev("e1", "c1", "ping", "+20m"), ev("e2", "c1", "ping", ms("+10m") - 1)]
    res = replay(ping_dir, recs)
    assert res.rejected == [(2, "late")]
    assert res.summary["late"] == 1
    assert brief(res.decisions) == [E("email", "+20m", ["e1"])]


def test_2_event_exactly_at_watermark_is_not_late(ping_dir):
    """2 + notes: late means occurred_at < watermark; exactly at the watermark is on time."""
    recs = [ev("e1", "c1", "ping", "+20m"), ev("e2", "c2", "ping", "+10m")]
    res = replay(ping_dir, recs)
    assert res.rejected == []
    assert res.summary["late"] == 0
    assert brief(res.decisions) == [E("email", "+10m", ["e2"]), E("email", "+20m", ["e1"])]


def test_2_stream_time_is_over_the_whole_input_not_per_customer(ping_dir):
    """2: in replay, stream time is the largest occurred_at over the whole input (all customers)."""
    recs = [ev("e1", "c1", "ping", "+1h"), ev("e2", "c2", "ping", "+0")]
    res = replay(ping_dir, recs)
    assert res.rejected == [(2, "late")]
    assert brief(res.decisions) == [E("email", "+1h", ["e1"])]


def test_2_stream_time_is_the_largest_seen_not_the_last(ping_dir):
    """2: stream time does not go back when an earlier (on-time) event arrives."""
    recs = [
        ev("e1", "c1", "ping", "+30m"),
        ev("e2", "c1", "ping", "+25m"),  # on time, does not lower stream time
        ev("e3", "c1", "ping", ms("+20m") - 1),  # still behind 30m - 10m
    ]
    res = replay(ping_dir, recs)
    assert res.rejected == [(3, "late")]


def test_2_lateness_from_policies(topo_dir):
    """2/4: lateness comes from policies.yaml; a combined duration like 1m30s is accepted."""
    d = topo_dir(on("ping_t", "ping", [engage("email")]), policies={"lateness": "1m30s"})
    recs = [
        ev("e1", "c1", "ping", "+10m"),
        ev("e2", "c2", "ping", "+8m30s"),  # exactly at watermark: on time
        ev("e3", "c3", "ping", ms("+8m30s") - 1),  # 1 ms before: late
    ]
    res = replay(d, recs)
    assert res.rejected == [(3, "late")]
    assert [x["evidence"] for x in res.decisions] == [["e2"], ["e1"]]


def test_2_late_event_is_not_evaluated(topo_dir):
    """2: a late event "is not evaluated": it cannot complete a sequence."""
    d = topo_dir(seq("ab", {"event": "a"}, {"event": "b"}))
    recs = [
        ev("a1", "c1", "a", "+0"),
        ev("x", "c2", "noise", "+1h"),
        ev("b1", "c1", "b", "+5m"),  # before watermark 50m -> late
    ]
    res = replay(d, recs)
    assert res.rejected == [(3, "late")]
    assert res.decisions == []


def test_2_late_unless_event_cannot_void_a_later_match(topo_dir):
    """2: a late event is not evaluated, not even as an `unless` event."""
    d = topo_dir(seq("ab", {"event": "a"}, {"event": "b"}, unless={"event": "x"}))
    recs = [
        ev("a1", "c1", "a", "+0"),
        ev("n", "c2", "noise", "+30m"),
        ev("x1", "c1", "x", "+5m"),  # late (watermark 20m)
        ev("b1", "c1", "b", "+25m"),
    ]
    res = replay(d, recs)
    assert res.rejected == [(3, "late")]
    assert brief(res.decisions) == [E("email", "+25m", ["a1", "b1"])]


# ------------------------------------------------------------ never retracted


def test_2_decisions_are_never_retracted(topo_dir):
    """2: an `unless` event arriving after the decision does not retract it; it only affects later matches."""
    d = topo_dir(seq("ab", {"event": "a"}, {"event": "b"}, unless={"event": "x"}))
    recs = [
        ev("a1", "c1", "a", "+0"),
        ev("b1", "c1", "b", "+5m"),  # fires (a1, b1)
        ev("x1", "c1", "x", "+2m"),  # would have voided it, arrives too late to matter
        ev("b2", "c1", "b", "+6m"),  # (a1, b2) has x1 inside (a1, b2] -> void
    ]
    res = replay(d, recs)
    assert res.rejected == []
    assert brief(res.decisions) == [E("email", "+5m", ["a1", "b1"])]


# --------------------------------------------------------------------- timers


CART_LEFT = absence("cart_left")
CART = ev("c1", "u1", "cart", "+0")  # its 1h deadline is +1h
REMINDED = [E("email", "+1h", ["c1"])]


def timer(id_, rule, events, expect, until=None):
    return case(id_, rule, CART_LEFT, events, expect, until=until)


@pytest.mark.parametrize(
    "c",
    [
        timer(
            "timer_not_fired_before_until_default_largest_occurred_at",
            "2: default --until is the largest occurred_at: a deadline after it does not fire.",
            [CART, ev("n1", "u2", "noise", "+59m")],
            [],
        ),
        timer(
            "timer_at_until_fires",
            "2: replay moves the watermark to --until; deadlines at or before it fire.",
            [CART],
            REMINDED,
            until=iso("+1h"),
        ),
        timer(
            "timer_before_until_fires",
            "2: a deadline before --until fires, effective at the deadline (not at --until).",
            [CART],
            REMINDED,
            until=iso("+5h"),
        ),
        timer(
            "timer_after_until_does_not_fire",
            "2: a deadline 1 ms after --until does not fire.",
            [CART],
            [],
            until=ms("+1h") - 1,
        ),
        timer(
            "until_as_epoch_millis",
            "6: --until takes the same forms as occurred_at: epoch ms.",
            [CART],
            REMINDED,
            until=BASE_MS + 3_600_000,
        ),
        timer(
            "until_as_iso_with_offset",
            "6: --until takes the same forms as occurred_at: ISO with an offset (13:00+02:00 = 11:00Z).",
            [CART],
            REMINDED,
            until="2026-05-01T13:00:00+02:00",
        ),
        timer(
            "default_until_is_largest_occurred_at_not_last_event",
            "2: default --until is the largest occurred_at in the input, even if a later line is earlier.",
            [CART, ev("n1", "u2", "noise", "+1h"), ev("n2", "u2", "noise", "+55m")],
            REMINDED,
        ),
    ],
)
def test_2_absence_timer_and_until(topo_dir, c: Case) -> None:
    """2: a cart at +0 arms a 1h absence deadline; whether it fires depends on --until (rule per case)."""
    assert brief(run_case(topo_dir, c).decisions) == c.expect, c.rule


def test_2_timer_fires_when_watermark_passes_during_the_stream(topo_dir):
    """2 + notes: a timer fires once the watermark reaches it, before the event that moved it.

    The absence match suppresses email; the event that moves the watermark to the
    deadline is the topology's release_on event, so it can only release a
    suppression that already exists.
    """
    d = topo_dir(
        absence(
            "cart_left",
            then=[suppress(["email"], "1d")],
            release_on={"event": "purchase"},
        )
    )
    recs = [
        ev("c1", "u1", "cart", "+0"),
        ev("p1", "u1", "purchase", "+1h10m"),  # moves watermark to +1h: timer fires first
    ]
    res = replay(d, recs)
    assert brief(res.decisions) == [
        S("email", "+1h", ["c1"]),
        R("email", "+1h10m", ["p1"]),
    ]


def test_2_timer_does_not_fire_before_watermark_reaches_it(topo_dir):
    """2: an event 1 ms short of moving the watermark to the deadline leaves the timer pending;
    the missing event that follows (inside the window) then prevents the match."""
    d = topo_dir(absence("cart_left"))
    recs = [
        ev("c1", "u1", "cart", "+0"),
        ev("n1", "u2", "noise", ms("+1h10m") - 1),  # watermark 1 ms before the deadline
        ev("p1", "u1", "purchase", "+1h"),  # at the deadline: inside (t0, t0+D], on time
    ]
    res = replay(d, recs, until=iso("+3h"))
    assert res.rejected == []
    assert res.decisions == []


# ------------------------------------------------------------------ durations


@pytest.mark.parametrize(
    "within, ok_at, too_late_at",
    [
        ("500ms", BASE_MS + 500, BASE_MS + 501),
        ("30s", "+30s", BASE_MS + 30_001),
        ("10m", "+10m", ms("+10m") + 1),
        ("72h", "+72h", ms("+72h") + 1),
        ("14d", "+14d", ms("+14d") + 1),
        ("1d12h", "+36h", ms("+36h") + 1),
        ("2h30m", "+150m", ms("+150m") + 1),
    ],
)
def test_2_duration_forms(topo_dir, within, ok_at, too_late_at):
    """2: durations `500ms`, `30s`, `10m`, `72h`, `14d` and combinations such as `1d12h`."""
    d = topo_dir(seq("ab", {"event": "a"}, {"event": "b", "within": within}))
    ok = replay(d, [ev("a1", "c1", "a", "+0"), ev("b1", "c1", "b", ok_at)])
    assert brief(ok.decisions) == [E("email", ok_at, ["a1", "b1"])]
    late = replay(d, [ev("a1", "c1", "a", "+0"), ev("b1", "c1", "b", too_late_at)])
    assert late.decisions == []


def test_2_combined_duration_in_suppress_for(topo_dir):
    """2 + 3.3: `for: 1d12h` -> expires_at = effective_at + 36h."""
    d = topo_dir(on("s", "ping", [suppress(["email"], "1d12h")]))
    res = replay(d, [ev("e1", "c1", "ping", "+0")])
    assert [(x["effective_at"], x["expires_at"]) for x in res.decisions] == [(iso("+0"), iso("+36h"))]
