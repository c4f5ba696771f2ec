"""Contract 7.1 (shadow mode) and 7.2 (service messages), black-box through replay.

Each test's docstring quotes the sentence it covers.
"""

from __future__ import annotations

from typing import Any

from .helpers import (
    counts,
    customers,
    engage,
    ev,
    goal,
    iso,
    on,
    pick,
    replay,
    status_of,
    suppress,
    with_keys,
)

SMS_CAP_1 = {"frequency_caps": [{"channel": "sms", "max": 1, "per": "7d"}]}


def shadow(doc: dict[str, Any], **keys: Any) -> dict[str, Any]:
    return with_keys(doc, mode="shadow", **keys)


def service(doc: dict[str, Any], **keys: Any) -> dict[str, Any]:
    return with_keys(doc, service=True, **keys)


# ------------------------------------------------------------------ 7.1 shadow


def test_7_1_every_decision_of_a_shadow_topology_is_shadow_with_cause_shadow(topo_dir):
    """7.1: "Every SUPPRESS, ENGAGE and RELEASE it makes gets the status shadow, with the cause shadow";
    "Shadow decisions are never sent to channels": none is in the output."""
    t = shadow(on("s", "go", [suppress(["email"]), engage("sms")], release_on={"event": "stop"}))
    res = replay(topo_dir(t), [ev("g1", "c1", "go", "+0"), ev("x1", "c1", "stop", "+1h")])
    assert res.decisions == []
    assert status_of(res.audit) == [
        ("s", "ENGAGE", "sms", "shadow", "shadow"),
        ("s", "RELEASE", "email", "shadow", "shadow"),
        ("s", "SUPPRESS", "email", "shadow", "shadow"),
    ]
    assert counts(res.summary) == {"ENGAGE": {"shadow": 1}, "RELEASE": {"shadow": 1}, "SUPPRESS": {"shadow": 1}}


def test_7_1_a_shadow_template_that_cannot_be_filled_still_gives_skipped(topo_dir):
    """7.1: "a template that cannot be filled still gives skipped"."""
    t = shadow(on("s", "go", [suppress(["email"], category="{e.category}"), engage("sms", "{e.sku}")]))
    res = replay(topo_dir(t), [ev("g1", "c1", "go", "+0")])
    assert [(a["kind"], a["status"], a["cause"]) for a in res.audit] == [
        ("ENGAGE", "skipped", "template {e.sku}"),
        ("SUPPRESS", "skipped", "template {e.category}"),
    ]


def test_7_1_shadow_suppressions_block_nothing(topo_dir):
    """7.1: "never in force: their suppressions block nothing" (not even a later evaluation's engagement)."""
    d = topo_dir(
        shadow(on("hush", "go", [suppress(["sms"], "7d")], priority=90)),
        on("live", "go", [engage("sms")], priority=10),
        on("later", "more", [engage("sms", "again")]),
    )
    res = replay(d, [ev("g1", "c1", "go", "+0"), ev("m1", "c1", "more", "+1h")])
    assert [(x["topology"], x["kind"]) for x in res.decisions] == [("live", "ENGAGE"), ("later", "ENGAGE")]


def test_7_1_no_check_is_made_on_a_shadow_engagement(topo_dir):
    """7.1: "no check is made on it (no suppression, cap or arbitration)": a live suppression in force,
    a full cap and a higher-priority rival leave it `shadow`."""
    d = topo_dir(
        on("hush", "go", [suppress(["sms"], "7d")], priority=90),
        on("rival", "go", [engage("sms", "rival")], priority=80),
        shadow(on("s", "go", [engage("sms", "s")], priority=10)),
        policies=SMS_CAP_1,
    )
    res = replay(d, [ev("g0", "c1", "go", "-1h"), ev("g1", "c1", "go", "+0")])
    rows = [(a["topology"], a["effective_at"], a["status"]) for a in pick(res.audit, kind="ENGAGE", topology="s")]
    assert rows == [("s", iso("-1h"), "shadow"), ("s", iso("+0"), "shadow")]


def test_7_1_shadow_engagements_outrank_nothing_and_count_toward_no_cap(topo_dir):
    """7.1: "their engagements outrank nothing and count toward no cap"."""
    d = topo_dir(
        shadow(on("s", "go", [engage("sms", "s")], priority=99)),
        on("live", "go", [engage("sms", "l")], priority=1),
        policies=SMS_CAP_1,
    )
    res = replay(d, [ev("g1", "c1", "go", "+0")])
    assert [(x["topology"], x["action"]) for x in res.decisions] == [("live", "l")]
    assert status_of(res.audit) == [
        ("live", "ENGAGE", "sms", "emitted", ""),
        ("s", "ENGAGE", "sms", "shadow", "shadow"),
    ]


def test_7_1_cooldown_applies_to_the_shadow_topology_itself(topo_dir):
    """7.1: "Shadow matches are fired matches: cooldown ... appl[ies] to the shadow topology itself"."""
    d = topo_dir(shadow(on("s", "go", [engage("sms")], cooldown="1d")), on("live", "go", [engage("email")]))
    res = replay(d, [ev("g1", "c1", "go", "+0"), ev("g2", "c1", "go", "+1h"), ev("g3", "c1", "go", "+1d")])
    assert [a["evidence"] for a in pick(res.audit, topology="s")] == [["g1"], ["g3"]]
    assert len(pick(res.decisions, topology="live")) == 3
    assert res.summary["matches_held_by_cooldown"] == 1


def test_7_1_the_same_shadow_match_never_fires_twice(topo_dir):
    """7.1: "the same match never fires twice" applies to shadow matches: a redelivered event makes no
    second decision."""
    when = {"count": {"event": "go", "at_least": 2, "within": "1h"}}
    d = topo_dir(shadow(with_keys(on("s", "go", [engage("sms")]), when=when)))
    events = [ev("g1", "c1", "go", "+0"), ev("g2", "c1", "go", "+5m"), ev("g3", "c1", "go", "+10m")]
    res = replay(d, [*events, ev("g2", "c1", "go", "+5m"), ev("g3", "c1", "go", "+10m")])
    assert [a["evidence"] for a in res.audit] == [["g1", "g2"], ["g2", "g3"]]
    assert res.summary["duplicates"] == 2


def test_7_1_a_shadow_release_lifts_only_its_own_shadow_suppressions(topo_dir):
    """7.1 + 7.3: a shadow topology's `release_on` lifts its shadow suppressions (status shadow), and leaves
    another topology's live suppression in force."""
    d = topo_dir(
        shadow(on("s", "go", [suppress(["email"], "7d")], release_on={"event": "stop"})),
        on("live", "go", [suppress(["email"], "7d")], release_on={"event": "never"}),
        on("probe", "ask", [engage("email", "promo")]),
    )
    res = replay(d, [ev("g1", "c1", "go", "+0"), ev("x1", "c1", "stop", "+1h"), ev("a1", "c1", "ask", "+2h")])
    assert status_of(pick(res.audit, kind="RELEASE")) == [("s", "RELEASE", "email", "shadow", "shadow")]
    [blocked] = pick(res.audit, topology="probe")
    assert blocked["status"] == "blocked"


def test_7_1_shadow_goals_are_tracked_with_the_arm_shadow(topo_dir):
    """7.1 + 7.4: a shadow match is a fired match: its goal is tracked, cause `shadow`."""
    t = shadow(on("s", "go", [engage("sms")]), goal=goal("buy", "1d"))
    res = replay(topo_dir(t), [ev("g1", "c1", "go", "+0"), ev("b1", "c1", "buy", "+1h")])
    assert status_of(pick(res.audit, kind="GOAL")) == [("s", "GOAL", "", "reached", "shadow")]


# ----------------------------------------------------------------- 7.2 service


def test_7_2_a_service_message_is_never_blocked_by_a_suppression(topo_dir):
    """7.2: "They are never blocked by a suppression": neither another topology's nor its own, made
    before it in the same match."""
    d = topo_dir(
        on("hush", "go", [suppress(["push"], "7d")], priority=99),
        service(on("outage", "go", [suppress(["push"], "3d"), engage("push", "status_update")], priority=50)),
        on("promo", "go", [engage("push", "promo")], priority=10),
    )
    res = replay(d, [ev("g0", "c1", "go", "-1h"), ev("g1", "c1", "go", "+0")])
    engagements = pick(res.audit, kind="ENGAGE")
    assert [(a["topology"], a["status"]) for a in engagements if a["topology"] == "outage"] == [
        ("outage", "emitted"),
        ("outage", "emitted"),
    ]
    assert {a["status"] for a in engagements if a["topology"] == "promo"} == {"blocked"}


def test_7_2_a_service_message_is_never_capped_and_counts_toward_no_cap(topo_dir):
    """7.2: "never capped and count toward no cap"."""
    d = topo_dir(
        service(on("notice", "alert", [engage("sms", "notice")])),
        on("promo", "ask", [engage("sms", "promo")]),
        policies={
            "frequency_caps": [{"channel": "sms", "max": 1, "per": "7d"}, {"channel": "*", "max": 1, "per": "7d"}]
        },
    )
    events = [ev(f"n{i}", "c1", "alert", f"+{i}h") for i in range(3)]
    events += [ev("p1", "c1", "ask", "+5h"), ev("p2", "c1", "ask", "+6h")]
    res = replay(d, events)
    assert [(x["topology"], x["evidence"]) for x in res.decisions] == [
        ("notice", ["n0"]),
        ("notice", ["n1"]),
        ("notice", ["n2"]),
        ("promo", ["p1"]),
    ]
    [capped] = pick(res.audit, topology="promo", status="blocked")
    assert capped["evidence"] == ["p2"] and capped["cause"].startswith("cap ")


def test_7_2_service_messages_take_part_in_arbitration(topo_dir):
    """7.2: "They take part in arbitration (4.4) like any engagement": outranked by a higher priority,
    outranking a lower one."""
    d = topo_dir(
        service(on("notice", "go", [engage("sms", "notice")], priority=50)),
        on("high", "go", [engage("sms", "high")], priority=60),
        on("low", "go2", [engage("sms", "low")], priority=40),
        service(on("notice2", "go2", [engage("sms", "notice2")], priority=50)),
    )
    res = replay(d, [ev("g1", "c1", "go", "+0"), ev("h1", "c1", "go2", "+1h")])
    assert sorted((a["topology"], a["status"]) for a in pick(res.audit, kind="ENGAGE")) == [
        ("high", "emitted"),
        ("low", "outranked"),
        ("notice", "outranked"),
        ("notice2", "emitted"),
    ]


def test_7_2_quiet_hours_apply_to_service_messages(topo_dir):
    """7.2: "quiet hours ... apply"."""
    quiet = {"quiet_hours": {"from": "21:00", "to": "08:00", "channels": ["sms"]}}
    d = topo_dir(service(on("notice", "go", [engage("sms")])), policies=quiet)
    res = replay(d, [ev("g1", "c1", "go", "2026-05-01T22:00:00Z")])
    [d1] = res.decisions
    assert d1["not_before"] == "2026-05-02T08:00:00.000Z"


def test_7_2_cooldown_applies_to_service_topologies(topo_dir):
    """7.2: "cooldown appl[ies]"."""
    d = topo_dir(service(on("notice", "go", [engage("sms")], cooldown="1d")))
    res = replay(d, [ev("g1", "c1", "go", "+0"), ev("g2", "c1", "go", "+1h")])
    assert [x["evidence"] for x in res.decisions] == [["g1"]]


def test_7_2_a_service_topology_is_never_in_the_global_control_group(topo_dir):
    """7.2: "A service topology is never in the global control group (7.3)"; a marketing one is."""
    [c] = customers("tactful", 5000, inside=True)
    d = topo_dir(
        service(on("notice", "go", [engage("push", "notice")])),
        on("promo", "go", [engage("email", "promo")]),
        policies={"holdout": {"percent": "50%"}},
    )
    res = replay(d, [ev("g1", c, "go", "+0")])
    assert status_of(res.audit) == [
        ("notice", "ENGAGE", "push", "emitted", ""),
        ("promo", "ENGAGE", "email", "held_out", "holdout_global"),
    ]


def test_7_2_a_service_topologys_own_holdout_applies(topo_dir):
    """7.2: "its own holdout, if set, applies"; the held-out service message is judged as if treated:
    not blocked by the suppression in force."""
    [c] = customers("tactful/notice", 5000, inside=True)
    d = topo_dir(
        on("hush", "go", [suppress(["push"], "7d")], priority=99),
        service(on("notice", "go", [engage("push", "notice")]), holdout="50%"),
    )
    res = replay(d, [ev("g1", c, "go", "+0")])
    assert status_of(pick(res.audit, kind="ENGAGE")) == [("notice", "ENGAGE", "push", "held_out", "holdout_topology")]
