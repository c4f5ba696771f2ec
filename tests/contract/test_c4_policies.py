"""Contract section 4.1-4.3: suppression blocks engagement, frequency caps, quiet hours."""

from __future__ import annotations

import pytest

from .helpers import E, S, brief, counts, engage, ev, iso, ms, on, pick, replay, suppress, topo

# ------------------------------------------------------------------ 4.1 block


def guard(category=None, channels=("email",), for_="1d", priority=90, name="guard"):
    return on(name, "sup", [suppress(list(channels), for_, category=category)], priority=priority)


def promo(category=None, channel="email", priority=10, name="promo"):
    return on(name, "go", [engage(channel, "sale", category=category)], priority=priority)


def eng_status(res):
    return [(a["channel"], a["status"], a["cause"]) for a in pick(res.audit, kind="ENGAGE")]


@pytest.mark.parametrize(
    "sup_cat, eng_cat, blocked",
    [
        (None, "shoes", True),  # default "*"
        ("*", "shoes", True),
        ("*", None, True),
        ("shoes", "shoes", True),
        ("shoes", None, True),  # engagement without category
        ("shoes", "bags", False),  # different category
    ],
)
def test_4_1_suppression_blocks_engagement_by_category(topo_dir, sup_cat, eng_cat, blocked):
    """4.1: blocked while a suppression of the same customer and channel is active whose category
    is "*", or equals the engagement's, or the engagement has no category."""
    d = topo_dir(guard(sup_cat), promo(eng_cat))
    res = replay(d, [ev("s1", "c1", "sup", "+0"), ev("g1", "c1", "go", "+1h")])
    sup_id = pick(res.decisions, kind="SUPPRESS")[0]["decision_id"]
    if blocked:
        assert pick(res.decisions, kind="ENGAGE") == []
        assert eng_status(res) == [("email", "blocked", f"suppressed_by {sup_id}")]
        assert counts(res.summary)["ENGAGE"] == {"blocked": 1}
    else:
        assert brief(pick(res.decisions, kind="ENGAGE")) == [E("email", "+1h", ["g1"], "bags")]
        assert eng_status(res) == [("email", "emitted", None)]


# Tables below pin both what is emitted and every ENGAGE evaluation's status and cause;
# SUPPRESSOR stands for "suppressed_by <the id of a SUPPRESS decision of this run>".
SUPPRESSOR = object()


def engagements(res):
    """(channel, status, cause) per ENGAGE evaluation, with the suppressing decision's id as SUPPRESSOR."""
    sup_ids = {d["decision_id"] for d in pick(res.decisions, kind="SUPPRESS")}
    return [
        (channel, status, SUPPRESSOR if cause and cause.removeprefix("suppressed_by ") in sup_ids else cause)
        for channel, status, cause in eng_status(res)
    ]


BLOCKED = [("email", "blocked", SUPPRESSOR)]
EMITTED = [("email", "emitted", None)]


@pytest.mark.parametrize(
    "rule, guard_channels, customer, at, engaged, statuses",
    [
        pytest.param(
            "4.1: only the same channel is blocked.",
            ("sms",), "c1", "+1h", [E("email", "+1h", ["g1"])], EMITTED,
            id="4_1_other_channel_not_blocked",
        ),
        pytest.param(
            "4.1: only the same customer is blocked.",
            ("email",), "c2", "+1h", [E("email", "+1h", ["g1"])], EMITTED,
            id="4_1_other_customer_not_blocked",
        ),
        pytest.param(
            "3.3 + 4.1: active over [effective_at, effective_at + for): 1 ms before the end -> blocked.",
            ("email",), "c1", ms("+1d") - 1, [], BLOCKED,
            id="4_1_suppression_active_until_just_before_its_end",
        ),
        pytest.param(
            "3.3 + 4.1: at effective_at + for the suppression is over -> emitted.",
            ("email",), "c1", "+1d", [E("email", "+1d", ["g1"])], EMITTED,
            id="4_1_suppression_not_active_at_its_end",
        ),
        pytest.param(
            "3.3 + 4.1: an engagement at the suppression's effective_at (later evaluation) is blocked.",
            ("email",), "c1", "+0", [], BLOCKED,
            id="4_1_suppression_active_from_its_start_instant",
        ),
    ],
)  # fmt: skip
def test_4_1_suppression_of_c1_email_at_0_for_1d(topo_dir, rule, guard_channels, customer, at, engaged, statuses):
    """4.1: a suppression (c1, +0, 1d) and one later engagement on email (rule per case)."""
    d = topo_dir(guard(channels=guard_channels), promo())
    res = replay(d, [ev("s1", "c1", "sup", "+0"), ev("g1", customer, "go", at)])
    assert brief(pick(res.decisions, kind="ENGAGE")) == engaged, rule
    assert engagements(res) == statuses, rule


def test_4_1_engagement_before_the_suppression_started_is_not_blocked(topo_dir):
    """4.1: an out-of-order engagement effective before the suppression's start is not blocked
    (the suppression is not active at that time)."""
    d = topo_dir(guard(), promo(), policies={"lateness": "1h"})
    res = replay(d, [ev("s1", "c1", "sup", "+30m"), ev("g1", "c1", "go", "+10m")])
    assert res.rejected == []
    assert brief(pick(res.decisions, kind="ENGAGE")) == [E("email", "+10m", ["g1"])]


SUP = suppress(["email"], "1d")
ENG = engage("email", "sale")


@pytest.mark.parametrize(
    "rule, topologies, decisions, statuses",
    [
        pytest.param(
            "4.4: topologies applied by priority, highest first; a suppression is in force for every "
            "engagement made after it -> the lower-priority engagement of the same event is blocked.",
            [on("hi", "go", [SUP], priority=90), on("lo", "go", [ENG], priority=10)],
            [S("email", "+0", ["g1"])], BLOCKED,
            id="4_1_same_evaluation_higher_priority_suppression_blocks",
        ),
        pytest.param(
            "4.4: the higher-priority engagement is made before the lower-priority suppression, so that "
            "suppression is not in force for it.",
            [on("hi", "go", [ENG], priority=90), on("lo", "go", [SUP], priority=10)],
            [E("email", "+0", ["g1"]), S("email", "+0", ["g1"])], EMITTED,
            id="4_1_same_evaluation_lower_priority_suppression_does_not_block_earlier_engagement",
        ),
        pytest.param(
            '4.4: equal priority -> applied by topology name: "aaa" suppresses before "bbb" engages.',
            [on("bbb", "go", [ENG], priority=50), on("aaa", "go", [SUP], priority=50)],
            [S("email", "+0", ["g1"])], BLOCKED,
            id="4_1_same_evaluation_priority_tie_broken_by_name",
        ),
        pytest.param(
            '4.4: equal priority -> "aaa" engages before "bbb" suppresses: not blocked.',
            [on("aaa", "go", [ENG], priority=50), on("bbb", "go", [SUP], priority=50)],
            [E("email", "+0", ["g1"]), S("email", "+0", ["g1"])], EMITTED,
            id="4_1_same_evaluation_priority_tie_broken_by_name_reverse",
        ),
        pytest.param(
            "4.4: a topology's actions in the order written: suppress first -> its own engagement blocked.",
            [on("t", "go", [SUP, ENG])],
            [S("email", "+0", ["g1"])], BLOCKED,
            id="4_1_actions_in_written_order_suppress_then_engage",
        ),
        pytest.param(
            "4.4: engage written first -> made before the suppression -> not blocked.",
            [on("t", "go", [ENG, SUP])],
            [E("email", "+0", ["g1"]), S("email", "+0", ["g1"])], EMITTED,
            id="4_1_actions_in_written_order_engage_then_suppress",
        ),
    ],
)  # fmt: skip
def test_4_1_one_event_suppressing_and_engaging(topo_dir, rule, topologies, decisions, statuses):
    """4.4 order within one evaluation decides whether 4.1 blocks (rule per case)."""
    res = replay(topo_dir(*topologies), [ev("g1", "c1", "go", "+0")])
    assert brief(res.decisions) == decisions, rule
    assert engagements(res) == statuses, rule


# ------------------------------------------------------------------- 4.2 caps


def caps(*entries, **extra):
    return {"frequency_caps": [dict(channel=c, max=m, per=p) for c, m, p in entries], **extra}


def sms_on(event, name=None, priority=None):
    return on(name or f"sms_{event}", event, [engage("sms", f"msg_{event}")], priority=priority)


def test_4_2_channel_cap_blocks_the_engagement_that_would_exceed(topo_dir):
    """4.2: max 2 per 1d on sms: the third engagement is blocked, cause names the cap."""
    d = topo_dir(sms_on("go"), policies=caps(("sms", 2, "1d")))
    res = replay(d, [ev(f"g{i}", "c1", "go", f"+{i}h") for i in range(3)])
    assert brief(res.decisions) == [E("sms", "+0", ["g0"]), E("sms", "+1h", ["g1"])]
    assert eng_status(res) == [
        ("sms", "emitted", None),
        ("sms", "emitted", None),
        ("sms", "blocked", "cap sms max 2 per 1d"),
    ]


def test_4_2_cap_window_excludes_t_minus_per(topo_dir):
    """4.2: window (t - per, t]: an engagement exactly `per` earlier no longer counts."""
    d = topo_dir(sms_on("go"), policies=caps(("sms", 2, "1d")))
    recs = [ev("g0", "c1", "go", "+0"), ev("g1", "c1", "go", "+1h"), ev("g2", "c1", "go", "+1d")]
    res = replay(d, recs)
    assert [x["evidence"] for x in res.decisions] == [["g0"], ["g1"], ["g2"]]


def test_4_2_cap_window_includes_just_after_t_minus_per(topo_dir):
    """4.2: 1 ms less than `per` later, the first engagement still counts."""
    d = topo_dir(sms_on("go"), policies=caps(("sms", 2, "1d")))
    recs = [ev("g0", "c1", "go", "+0"), ev("g1", "c1", "go", "+1h"), ev("g2", "c1", "go", ms("+1d") - 1)]
    res = replay(d, recs)
    assert [x["evidence"] for x in res.decisions] == [["g0"], ["g1"]]


def test_4_2_star_cap_counts_all_channels(topo_dir):
    """4.2: a "*" cap counts engagements on all channels together."""
    d = topo_dir(
        on("a", "ga", [engage("sms", "x")]),
        on("b", "gb", [engage("email", "x")]),
        on("c", "gc", [engage("push", "x")]),
        policies=caps(("*", 2, "1d")),
    )
    recs = [ev("e1", "c1", "ga", "+0"), ev("e2", "c1", "gb", "+1m"), ev("e3", "c1", "gc", "+2m")]
    res = replay(d, recs)
    assert brief(res.decisions) == [E("sms", "+0", ["e1"]), E("email", "+1m", ["e2"])]
    assert eng_status(res)[-1] == ("push", "blocked", "cap * max 2 per 1d")


def test_4_2_channel_cap_ignores_other_channels(topo_dir):
    """4.2: a channel cap counts only that channel."""
    d = topo_dir(
        on("a", "ga", [engage("email", "x")]),
        on("b", "gb", [engage("sms", "x")]),
        policies=caps(("sms", 1, "1d")),
    )
    res = replay(d, [ev("e1", "c1", "ga", "+0"), ev("e2", "c1", "gb", "+1m")])
    assert brief(res.decisions) == [E("email", "+0", ["e1"]), E("sms", "+1m", ["e2"])]


def test_4_2_cap_is_per_customer(topo_dir):
    """4.2: caps count the customer's own engagements."""
    d = topo_dir(sms_on("go"), policies=caps(("sms", 1, "1d")))
    res = replay(d, [ev("g1", "c1", "go", "+0"), ev("g2", "c2", "go", "+1m")])
    assert [x["customer_id"] for x in res.decisions] == ["c1", "c2"]


def test_4_2_cap_counts_only_emitted_engagements(topo_dir):
    """4.2: "counts the ENGAGE decisions already emitted": blocked ones do not count."""
    d = topo_dir(
        on("guard", "sup", [suppress(["sms"], "1h")], priority=90),
        sms_on("go"),
        policies=caps(("sms", 1, "1d")),
    )
    recs = [ev("s1", "c1", "sup", "+0"), ev("g1", "c1", "go", "+10m"), ev("g2", "c1", "go", "+2h")]
    res = replay(d, recs)
    assert brief(pick(res.decisions, kind="ENGAGE")) == [E("sms", "+2h", ["g2"])]
    assert [s for _, s, _ in eng_status(res)] == ["blocked", "emitted"]


def test_4_2_cap_blocked_engagements_do_not_count(topo_dir):
    """4.2: an engagement blocked by a cap is not emitted, so it does not count later."""
    d = topo_dir(sms_on("go"), policies=caps(("sms", 1, "1h")))
    recs = [ev("g0", "c1", "go", "+0"), ev("g1", "c1", "go", "+30m"), ev("g2", "c1", "go", "+1h")]
    res = replay(d, recs)
    assert [x["evidence"] for x in res.decisions] == [["g0"], ["g2"]]


def test_4_2_any_cap_exceeded_blocks(topo_dir):
    """4.2: "An engagement that would exceed any cap is blocked" (channel cap loose, * cap tight)."""
    d = topo_dir(
        on("a", "ga", [engage("email", "x")]),
        sms_on("go"),
        policies=caps(("sms", 5, "1d"), ("*", 1, "1d")),
    )
    res = replay(d, [ev("e1", "c1", "ga", "+0"), ev("g1", "c1", "go", "+1m")])
    assert brief(res.decisions) == [E("email", "+0", ["e1"])]
    assert eng_status(res)[-1] == ("sms", "blocked", "cap * max 1 per 1d")


def test_4_2_cap_counts_engagements_emitted_earlier_in_the_same_evaluation(topo_dir):
    """4.2 + notes: caps count engagements emitted earlier in the same evaluation; the higher
    priority topology is applied (and counted) first."""
    d = topo_dir(
        on("hi", "go", [engage("sms", "x")], priority=60),
        on("lo", "go", [engage("email", "y")], priority=50),
        policies=caps(("*", 1, "1d")),
    )
    res = replay(d, [ev("g1", "c1", "go", "+0")])
    assert brief(res.decisions) == [E("sms", "+0", ["g1"])]
    assert sorted(eng_status(res)) == [
        ("email", "blocked", "cap * max 1 per 1d"),
        ("sms", "emitted", None),
    ]


def test_4_2_later_effective_engagement_does_not_count_for_an_earlier_one(topo_dir):
    """4.2: the window is (t - per, t] around the new engagement's time t: an engagement emitted
    earlier in processing but effective after t is outside the window."""
    d = topo_dir(sms_on("go"), sms_on("go2"), policies=caps(("sms", 1, "1d"), lateness="1h"))
    res = replay(d, [ev("g1", "c1", "go", "+30m"), ev("g2", "c1", "go2", "+10m")])
    assert res.rejected == []
    assert [x["evidence"] for x in res.decisions] == [["g2"], ["g1"]]


def test_4_2_caps_do_not_apply_to_suppressions(topo_dir):
    """4.2: caps count and block ENGAGE decisions only."""
    d = topo_dir(on("g", "go", [suppress(["sms"], "1h")]), policies=caps(("sms", 1, "1d"), ("*", 1, "1d")))
    res = replay(d, [ev("g1", "c1", "go", "+0"), ev("g2", "c1", "go", "+1m")])
    assert brief(res.decisions) == [S("sms", "+0", ["g1"]), S("sms", "+1m", ["g2"])]


# ------------------------------------------------------------- 4.3 quiet hours


def quiet(frm="21:00", to="08:00", channels=("sms",), **extra):
    q = {"from": frm, "to": to, "channels": list(channels), **extra}
    return {"quiet_hours": q}


def qdir(topo_dir, **qkw):
    return topo_dir(
        on("q", "go", [engage("sms", "x"), engage("email", "y")]),
        policies=quiet(**qkw),
    )


def nb(res, channel="sms"):
    [d] = pick(res.decisions, channel=channel)
    return d["effective_at"], d["not_before"]


@pytest.mark.parametrize(
    "at, not_before",
    [
        ("2026-05-01T22:00:00Z", "2026-05-02T08:00:00.000Z"),
        ("2026-05-01T21:00:00Z", "2026-05-02T08:00:00.000Z"),  # from is inclusive
        ("2026-05-01T20:59:59.999Z", "2026-05-01T20:59:59.999Z"),
        ("2026-05-02T00:00:00Z", "2026-05-02T08:00:00.000Z"),  # past midnight
        ("2026-05-01T07:59:59.999Z", "2026-05-01T08:00:00.000Z"),
        ("2026-05-01T08:00:00Z", "2026-05-01T08:00:00.000Z"),  # to is exclusive
        ("2026-05-01T12:00:00Z", "2026-05-01T12:00:00.000Z"),
    ],
)
def test_4_3_quiet_window_wrapping_midnight(topo_dir, at, not_before):
    """4.3: inside [from, to) (wrapping past midnight) -> not_before = end of that window;
    otherwise not_before = effective_at."""
    d = qdir(topo_dir)
    res = replay(d, [ev("g1", "c1", "go", at)])
    assert nb(res) == (iso(at), not_before)
    assert [a["status"] for a in res.audit] == ["emitted", "emitted"]


@pytest.mark.parametrize(
    "at, not_before",
    [
        ("2026-05-01T13:00:00Z", "2026-05-01T14:00:00.000Z"),
        ("2026-05-01T12:00:00Z", "2026-05-01T14:00:00.000Z"),
        ("2026-05-01T14:00:00Z", "2026-05-01T14:00:00.000Z"),
        ("2026-05-01T11:59:00Z", "2026-05-01T11:59:00.000Z"),
        ("2026-05-01T23:00:00Z", "2026-05-01T23:00:00.000Z"),
    ],
)
def test_4_3_quiet_window_not_wrapping(topo_dir, at, not_before):
    """4.3: a same-day window [12:00, 14:00)."""
    d = qdir(topo_dir, frm="12:00", to="14:00")
    res = replay(d, [ev("g1", "c1", "go", at)])
    assert nb(res) == (iso(at), not_before)


@pytest.mark.parametrize(
    "rule, quiet_options, channel, at, attrs, not_before",
    [
        pytest.param(
            "4.3: only the listed channels are quiet.",
            {}, "email", "2026-05-01T22:00:00Z", {}, None,
            id="4_3_non_quiet_channel_unaffected",
        ),
        pytest.param(
            "4.3: the zone named by the `tz` attribute: 01:30Z is 21:30 EDT -> quiet until 08:00 EDT (12:00Z).",
            {}, "sms", "2026-05-02T01:30:00Z", {"tz": "America/New_York"}, "2026-05-02T12:00:00.000Z",
            id="4_3_time_zone_from_event_attribute",
        ),
        pytest.param(
            "4.3: 22:00Z is 18:00 in New York: not quiet there (though it would be in UTC).",
            {}, "sms", "2026-05-01T22:00:00Z", {"tz": "America/New_York"}, None,
            id="4_3_time_zone_from_event_attribute_outside_window",
        ),
        pytest.param(
            "4.3: no tz attribute -> default_timezone (Asia/Tokyo: 13:00Z is 22:00 JST).",
            {"default_timezone": "Asia/Tokyo"}, "sms", "2026-05-01T13:00:00Z", {}, "2026-05-01T23:00:00.000Z",
            id="4_3_default_timezone",
        ),
        pytest.param(
            "4.3: an unknown zone name falls back to the default.",
            {"default_timezone": "Asia/Tokyo"}, "sms", "2026-05-01T13:00:00Z", {"tz": "Mars/Olympus_Mons"},
            "2026-05-01T23:00:00.000Z",
            id="4_3_unknown_zone_falls_back_to_default",
        ),
        pytest.param(
            "4.3: a known zone in the attribute wins over the default.",
            {"default_timezone": "Asia/Tokyo"}, "sms", "2026-05-01T13:00:00Z", {"tz": "UTC"}, None,
            id="4_3_event_zone_overrides_default",
        ),
        pytest.param(
            "4.3: `timezone_attribute` names the attribute to read (here `zone`, not `tz`).",
            {"timezone_attribute": "zone"}, "sms", "2026-05-01T22:00:00Z", {"zone": "America/New_York", "tz": "UTC"},
            None,
            id="4_3_custom_timezone_attribute",
        ),
    ],
)  # fmt: skip
def test_4_3_quiet_channels_and_time_zones(topo_dir, rule, quiet_options, channel, at, attrs, not_before):
    """4.3: which channel is quiet and in which zone (rule per case); None: not deferred (= effective_at)."""
    res = replay(qdir(topo_dir, **quiet_options), [ev("g1", "c1", "go", at, **attrs)])
    assert nb(res, channel) == (iso(at), not_before or iso(at)), rule


def test_4_3_time_zone_from_the_matchs_last_event(topo_dir):
    """4.3: the zone comes from the match's *last* event: the first step's tz is not used."""
    d = topo_dir(
        topo("q", {"sequence": [{"event": "a"}, {"event": "b"}]}, [engage("sms", "x")]),
        policies=quiet(),
    )
    recs = [
        ev("a1", "c1", "a", "2026-05-01T21:50:00Z", tz="America/New_York"),
        ev("b1", "c1", "b", "2026-05-01T22:00:00Z"),
    ]
    res = replay(d, recs)
    assert nb(res) == (iso("2026-05-01T22:00:00Z"), "2026-05-02T08:00:00.000Z")
    recs = [
        ev("a1", "c1", "a", "2026-05-01T21:50:00Z"),
        ev("b1", "c1", "b", "2026-05-01T22:00:00Z", tz="America/New_York"),
    ]
    res = replay(d, recs)
    assert nb(res) == (iso("2026-05-01T22:00:00Z"),) * 2


def test_4_3_time_zone_for_absence_from_after_event(topo_dir):
    """4.3: for `absence`, the zone comes from its `after` event; the effective time is the
    deadline (13:00Z = 22:00 JST -> not_before 08:00 JST = 23:00Z)."""
    d = topo_dir(
        topo(
            "ab",
            {"absence": {"after": {"event": "cart"}, "missing": {"event": "buy"}, "for": "1h"}},
            [engage("sms", "x")],
        ),
        policies=quiet(),
    )
    res = replay(d, [ev("k1", "c1", "cart", "2026-05-01T12:00:00Z", tz="Asia/Tokyo")], until="2026-05-02T00:00:00Z")
    assert nb(res) == (iso("2026-05-01T13:00:00Z"), "2026-05-01T23:00:00.000Z")


def test_4_3_default_timezone_attribute_is_tz_and_default_zone_utc(topo_dir):
    """Notes: timezone_attribute defaults to `tz`, default_timezone to UTC."""
    d = topo_dir(
        on("q", "go", [engage("sms", "x")]),
        policies={"quiet_hours": {"from": "21:00", "to": "08:00", "channels": ["sms"]}},
    )
    res = replay(
        d,
        [
            ev("g2", "c2", "go", "2026-05-01T22:00:00Z"),
            ev("g1", "c1", "go", "2026-05-02T01:30:00Z", tz="America/New_York"),
        ],
    )
    assert [(x["customer_id"], x["not_before"]) for x in res.decisions] == [
        ("c2", "2026-05-02T08:00:00.000Z"),
        ("c1", "2026-05-02T12:00:00.000Z"),
    ]


def test_4_3_no_quiet_hours_by_default(topo_dir):
    """4.3 + notes: without quiet_hours, not_before equals effective_at."""
    d = topo_dir(on("q", "go", [engage("sms", "x")]))
    res = replay(d, [ev("g1", "c1", "go", "2026-05-01T23:00:00Z")])
    assert nb(res) == (iso("2026-05-01T23:00:00Z"),) * 2


def test_4_3_unquoted_hh_mm_is_never_read_as_a_number(topo_dir):
    """4.3: "a loader must never read an unquoted 21:00 as a number (YAML 1.1 does)".

    Either the loader reads it as the time 21:00 or it rejects the file naming
    policies.yaml; reading it as 1260 (or any number) is the failure.
    """
    from streams.errors import TopologyError

    d = topo_dir(
        on("q", "go", [engage("sms", "x")]),
        policies="""
            quiet_hours:
              from: 21:00
              to: 08:00
              channels: [sms]
            """,
    )
    try:
        res = replay(d, [ev("g2", "c2", "go", "2026-05-01T20:00:00Z"), ev("g1", "c1", "go", "2026-05-01T22:00:00Z")])
    except TopologyError as exc:
        assert any("policies.yaml" in str(p.file) for p in exc.problems)
        return
    assert [(x["customer_id"], x["not_before"]) for x in res.decisions] == [
        ("c2", "2026-05-01T20:00:00.000Z"),
        ("c1", "2026-05-02T08:00:00.000Z"),
    ]


def test_4_3_expires_at_counts_from_effective_at_not_not_before(topo_dir):
    """5 + 4.3: ENGAGE expires_at is effective + `expires`, even when quiet hours defer not_before."""
    d = topo_dir(on("q", "go", [engage("sms", "x", expires="1h")]), policies=quiet())
    res = replay(d, [ev("g1", "c1", "go", "2026-05-01T22:00:00Z")])
    assert [(x["effective_at"], x["not_before"], x["expires_at"]) for x in res.decisions] == [
        ("2026-05-01T22:00:00.000Z", "2026-05-02T08:00:00.000Z", "2026-05-01T23:00:00.000Z")
    ]


def test_4_3_quiet_hours_apply_to_engagements_only(topo_dir):
    """4.3: suppressions on a quiet channel are not deferred (not_before is ENGAGE only)."""
    d = topo_dir(on("q", "go", [suppress(["sms"], "1h")]), policies=quiet())
    res = replay(d, [ev("g1", "c1", "go", "2026-05-01T22:00:00Z")])
    assert [(x["kind"], x["effective_at"], x["not_before"]) for x in res.decisions] == [
        ("SUPPRESS", "2026-05-01T22:00:00.000Z", None)
    ]
