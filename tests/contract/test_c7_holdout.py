"""Contract 7.3: control groups (holdouts), black-box through replay.

The bucket function is pinned by a table of values; the arms, the judging of
held-out decisions and their releases by replays. Each test's docstring quotes
the sentence it covers.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

import pytest

from .helpers import (
    bucket,
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

# (salt, customer id, bucket): computed once from the contract's formula and pinned, so that the
# function can never drift, in replay or live.
BUCKETS = [
    ("tactful", "c1", 1605),
    ("tactful", "c2", 9892),
    ("tactful", "customer-42", 3715),
    ("tactful", "c000001", 9247),
    ("tactful", "é", 3738),
    ("2026-12", "c1", 8485),
    ("2026-12", "c2", 7859),
    ("2026-12", "customer-42", 6345),
    ("2026-12", "c000001", 7554),
    ("2026-12", "é", 3103),
    ("tactful/promo", "c1", 4679),
    ("tactful/promo", "c2", 9964),
    ("tactful/promo", "customer-42", 2846),
    ("tactful/promo", "c000001", 5340),
    ("tactful/promo", "é", 2700),
    ("", "c1", 9435),
    ("", "c2", 2724),
]


@pytest.mark.parametrize(("salt", "customer", "value"), BUCKETS)
def test_7_3_bucket_values_are_pinned(salt, customer, value):
    """7.3: the bucket function exactly as written, in the engine and as the contract writes it."""
    from streams.decisions import bucket as engine_bucket

    assert engine_bucket(salt, customer) == bucket(salt, customer) == value


def test_7_3_buckets_are_uniform_over_a_million_ids():
    """7.3: buckets are uniform: a chi-square test over a million generated ids, 10,000 buckets.

    With 9,999 degrees of freedom the statistic is close to normal (mean 9,999, sd ~141);
    the ids are fixed, so the test is deterministic: |z| < 5 fails only for a broken function
    (too lumpy, or too even, as a counter would be).
    """
    from streams.decisions import bucket as engine_bucket

    n, k = 1_000_000, 10_000
    seen = Counter(engine_bucket("tactful", f"c{i:07d}") for i in range(n))
    expected = n / k
    chi2 = sum((seen.get(b, 0) - expected) ** 2 / expected for b in range(k))
    z = (chi2 - (k - 1)) / math.sqrt(2 * (k - 1))
    assert abs(z) < 5, (chi2, z)
    # and the control group's share is what its percentage says
    assert abs(sum(seen[b] for b in range(500)) / n - 0.05) < 0.002


@pytest.mark.parametrize("delta", [0, 1])
def test_7_3_in_a_control_group_when_bucket_is_below_h(topo_dir, delta):
    """7.3: "the customer is in a control group of h hundredths of a percent when bucket < h": at
    h = bucket the customer is treated, at h = bucket + 1 held out (the percentage read exactly)."""
    b = bucket("tactful", "c1")  # 1605
    h = b + delta
    percent = f"{h // 100}.{h % 100:02d}%"
    d = topo_dir(on("promo", "go", [engage("email")]), policies={"holdout": {"percent": percent}})
    res = replay(d, [ev("g1", "c1", "go", "+0")])
    [a] = res.audit
    assert a["status"] == ("held_out" if delta else "emitted")


def test_7_3_the_global_group_uses_the_policies_salt(topo_dir):
    """7.3: "The global control group uses the policies' salt"."""
    ids = [f"c{i}" for i in range(10_000)]
    # in the group by this salt and not by the default one, and the other way round
    inside = next(c for c in ids if bucket("2026-12", c) < 1000 <= bucket("tactful", c))
    outside = next(c for c in ids if bucket("tactful", c) < 1000 <= bucket("2026-12", c))
    d = topo_dir(on("promo", "go", [engage("email")]), policies={"holdout": {"percent": "10%", "salt": "2026-12"}})
    res = replay(d, [ev("g1", inside, "go", "+0"), ev("g2", outside, "go", "+0")])
    assert {a["customer_id"]: (a["status"], a["cause"]) for a in res.audit} == {
        inside: ("held_out", "holdout_global"),
        outside: ("emitted", None),
    }


def test_7_3_a_topologys_group_uses_global_salt_slash_name(topo_dir):
    """7.3: "a topology's own control group uses the salt global_salt + "/" + topology name"."""
    inside = customers("s1/promo", 3000, inside=True, n=3)
    outside = customers("s1/promo", 3000, inside=False, n=3)
    d = topo_dir(
        with_keys(on("promo", "go", [engage("email")]), holdout="30%"),
        policies={"holdout": {"salt": "s1"}},
    )
    res = replay(d, [ev(f"g-{c}", c, "go", "+0") for c in inside + outside])
    got = {a["customer_id"]: (a["status"], a["cause"]) for a in res.audit}
    assert got == {
        **{c: ("held_out", "holdout_topology") for c in inside},
        **{c: ("emitted", None) for c in outside},
    }


def arm_of(res: Any, topology: str) -> str:
    [g] = pick(res.audit, kind="GOAL", topology=topology)
    return str(g["cause"])


@pytest.mark.parametrize(
    ("mode", "in_global", "in_topology", "arm"),
    [
        ("shadow", True, True, "shadow"),
        ("shadow", False, False, "shadow"),
        ("live", True, True, "holdout_global"),
        ("live", True, False, "holdout_global"),
        ("live", False, True, "holdout_topology"),
        ("live", False, False, "treated"),
    ],
)
def test_7_3_a_fired_match_belongs_to_the_first_arm_that_applies(topo_dir, mode, in_global, in_topology, arm):
    """7.3: "A fired match belongs to one arm, the first that applies: shadow, holdout_global,
    holdout_topology, else treated" (seen as the cause of its GOAL record)."""
    c = next(
        f"c{i}"
        for i in range(10_000)
        if (bucket("tactful", f"c{i}") < 5000) == in_global and (bucket("tactful/t", f"c{i}") < 5000) == in_topology
    )
    t = with_keys(on("t", "go", [engage("email")]), mode=mode, holdout="50%", goal=goal("buy", "1h"))
    res = replay(topo_dir(t, policies={"holdout": {"percent": "50%"}}), [ev("g1", c, "go", "+0")], until=iso("+2h"))
    assert arm_of(res, "t") == arm
    [e] = pick(res.audit, kind="ENGAGE")
    expected = {"shadow": ("shadow", "shadow"), "treated": ("emitted", None)}.get(arm, ("held_out", arm))
    assert (e["status"], e["cause"]) == expected


def held_customer(topology: str = "held") -> str:
    return customers(f"tactful/{topology}", 10000, inside=True)[0]


def held(doc: dict[str, Any]) -> dict[str, Any]:
    return with_keys(doc, holdout="100%")


def test_7_3_held_out_decisions_are_held_out_with_the_arm_as_cause(topo_dir):
    """7.3: "every decision of the match that would have been emitted gets the status held_out instead,
    with the arm ... as its cause"; none is sent."""
    d = topo_dir(held(on("held", "go", [suppress(["email", "ads"]), engage("sms")])))
    res = replay(d, [ev("g1", "c1", "go", "+0")])
    assert res.decisions == []
    assert status_of(res.audit) == [
        ("held", "ENGAGE", "sms", "held_out", "holdout_topology"),
        ("held", "SUPPRESS", "ads", "held_out", "holdout_topology"),
        ("held", "SUPPRESS", "email", "held_out", "holdout_topology"),
    ]
    assert counts(res.summary) == {"ENGAGE": {"held_out": 1}, "SUPPRESS": {"held_out": 2}}


def test_7_3_blocked_outranked_and_skipped_keep_their_status(topo_dir):
    """7.3: "blocked, outranked and skipped keep their status"."""
    d = topo_dir(
        on("hush", "go", [suppress(["push"], "7d")], priority=99),
        held(
            on(
                "held",
                "go",
                [engage("push", "p"), engage("sms", "first"), engage("sms", "second"), engage("email", "{e.sku}")],
            )
        ),
    )
    res = replay(d, [ev("g1", "c1", "go", "+0")])
    got = sorted((a["action"] or a["cause"], a["status"]) for a in pick(res.audit, topology="held"))
    assert got == [("first", "held_out"), ("p", "blocked"), ("second", "outranked"), ("template {e.sku}", "skipped")]


def test_7_3_a_held_out_engagement_is_blocked_by_suppressions_in_force(topo_dir):
    """7.3: "an ENGAGE is blocked by suppressions in force ... exactly as a treated one would be"
    (one made earlier in the same evaluation, and one from an earlier evaluation)."""
    d = topo_dir(
        on("hush", "go", [suppress(["sms"], "1h")], priority=99),
        held(on("held", "go", [engage("sms")], priority=10)),
        held(on("held2", "go2", [engage("sms")])),
    )
    res = replay(d, [ev("g1", "c1", "go", "+0"), ev("h1", "c1", "go2", "+30m"), ev("h2", "c1", "go2", "+2h")])
    [sup] = pick(res.audit, kind="SUPPRESS")
    rows = [(a["topology"], a["evidence"], a["status"], a["cause"]) for a in pick(res.audit, kind="ENGAGE")]
    assert sorted(rows) == [
        ("held", ["g1"], "blocked", f"suppressed_by {sup['decision_id']}"),
        ("held2", ["h1"], "blocked", f"suppressed_by {sup['decision_id']}"),
        ("held2", ["h2"], "held_out", "holdout_topology"),
    ]


def test_7_3_a_held_out_engagement_is_blocked_by_caps_counting_emitted_ones(topo_dir):
    """7.3: blocked "by caps (which count emitted engagements only, including those emitted earlier in
    the same evaluation)"."""
    d = topo_dir(
        on("first", "go", [engage("sms", "treated")], priority=90),
        held(on("held", "go", [engage("sms", "held")], priority=10)),
        policies={"frequency_caps": [{"channel": "sms", "max": 1, "per": "7d"}]},
    )
    res = replay(d, [ev("g1", "c1", "go", "+0")])
    assert sorted((a["topology"], a["status"]) for a in res.audit) == [("first", "emitted"), ("held", "blocked")]
    [capped] = pick(res.audit, topology="held")
    assert capped["cause"] == "cap sms max 1 per 7d"


def test_7_3_held_out_engagements_count_toward_no_cap(topo_dir):
    """7.3: "their engagements count toward no cap"."""
    d = topo_dir(
        held(on("held", "go", [engage("sms", "held")], priority=90)),
        on("later", "go2", [engage("sms", "treated")]),
        policies={"frequency_caps": [{"channel": "sms", "max": 1, "per": "7d"}]},
    )
    res = replay(d, [ev("g1", "c1", "go", "+0"), ev("g2", "c1", "go", "+1m"), ev("t1", "c1", "go2", "+1h")])
    assert [(x["topology"], x["action"]) for x in res.decisions] == [("later", "treated")]
    assert [a["status"] for a in pick(res.audit, topology="held")] == ["held_out", "held_out"]


def test_7_3_a_held_out_engagement_is_arbitrated_only_within_its_own_match(topo_dir):
    """7.3: "it is arbitrated only against the other engagements of its own match, never against other
    topologies' engagements (it neither outranks nor is outranked by them)"."""
    d = topo_dir(
        held(on("held", "go", [engage("sms", "held-low", priority=10), engage("sms", "held-high", priority=70)])),
        on("treated_low", "go", [engage("sms", "t-low")], priority=5),
        on("treated_high", "go", [engage("sms", "t-high")], priority=99),
    )
    res = replay(d, [ev("g1", "c1", "go", "+0")])
    got = sorted((a["action"], a["status"]) for a in res.audit)
    assert got == [("held-high", "held_out"), ("held-low", "outranked"), ("t-high", "emitted"), ("t-low", "outranked")]
    [low] = [a for a in res.audit if a["action"] == "held-low"]
    [high] = [a for a in res.audit if a["action"] == "held-high"]
    assert low["cause"] == f"outranked_by {high['decision_id']}"


def test_7_3_held_out_suppressions_block_nothing_not_even_their_own_match(topo_dir):
    """7.3: "their suppressions block nothing, not even the same match's own engagements"."""
    d = topo_dir(
        held(on("held", "go", [suppress(["sms"], "7d"), engage("sms", "own")], priority=90)),
        on("other", "go", [engage("email", "same-evaluation")], priority=10),
        on("later", "go2", [engage("sms", "later")]),
    )
    d2 = topo_dir(
        held(on("held", "go", [suppress(["sms", "email"], "7d"), engage("sms", "own")], priority=90)),
        on("other", "go", [engage("email", "same-evaluation")], priority=10),
        on("later", "go2", [engage("sms", "later")]),
    )
    for folder in (d, d2):
        res = replay(folder, [ev("g1", "c1", "go", "+0"), ev("l1", "c1", "go2", "+1h")])
        assert sorted(x["action"] for x in res.decisions) == ["later", "same-evaluation"]
        [own] = pick(res.audit, topology="held", kind="ENGAGE")
        assert own["status"] == "held_out"


def test_7_3_quiet_hours_apply_to_held_out_engagements(topo_dir):
    """7.3: judged as if treated: `not_before` is the end of the quiet window, as emitted it would be."""
    quiet = {"quiet_hours": {"from": "21:00", "to": "08:00", "channels": ["sms"]}}
    d = topo_dir(held(on("held", "go", [engage("sms")])), policies=quiet)
    res = replay(d, [ev("g1", "c1", "go", "2026-05-01T22:00:00Z")])
    [a] = res.audit
    assert (a["status"], a["not_before"]) == ("held_out", "2026-05-02T08:00:00.000Z")


# ---------------------------------------------------------------- releases


def test_7_3_a_release_of_a_held_out_suppression_carries_its_status_and_cause(topo_dir):
    """7.3: "A RELEASE of a held-out or shadow suppression (by release_on ...) carries the status and the
    cause of the suppression it releases"; one per (channel, category, status, cause)."""
    d = topo_dir(
        held(on("held", "go", [suppress(["email"], "7d"), suppress(["email"], "7d")], release_on={"event": "stop"}))
    )
    res = replay(d, [ev("g1", "c1", "go", "+0"), ev("g2", "c1", "go", "+1m"), ev("x1", "c1", "stop", "+1h")])
    releases = pick(res.audit, kind="RELEASE")
    assert [(r["channel"], r["category"], r["status"], r["cause"], r["evidence"]) for r in releases] == [
        ("email", "*", "held_out", "holdout_topology", ["x1"])
    ]
    assert res.decisions == []


def test_7_3_releases_are_one_per_channel_category_status_and_cause(topo_dir):
    """7.3: "Releases are made one per (channel, category, status, cause)": a treated and a held-out
    suppression of the same (channel, category) by one topology give two releases."""
    [held_c] = customers("tactful/t", 5000, inside=True)
    d = topo_dir(
        with_keys(on("t", "go", [suppress(["email"], "7d")], release_on={"event": "stop"}), holdout="50%"),
    )
    # the treated suppression is the customer's, made under a catalog where `t` has no holdout
    d_treated = topo_dir(on("t", "go", [suppress(["email"], "7d")], release_on={"event": "stop"}))
    events = [ev("g1", held_c, "go", "+0"), ev("x1", held_c, "stop", "+1h")]
    held_release = pick(replay(d, events).audit, kind="RELEASE")
    treated_release = pick(replay(d_treated, events).audit, kind="RELEASE")
    assert [(r["status"], r["cause"]) for r in held_release] == [("held_out", "holdout_topology")]
    assert [(r["status"], r["cause"]) for r in treated_release] == [("emitted", None)]
    # same topology, version, customer, evidence, channel and category: only status and cause differ
    strip = [
        {k: v for k, v in r.items() if k not in ("decision_id", "status", "cause")}
        for r in (*held_release, *treated_release)
    ]
    assert strip[0] == strip[1]
    assert held_release[0]["decision_id"] != treated_release[0]["decision_id"]


def test_7_3_an_emitted_release_keeps_the_v1_id(topo_dir):
    """7.3: "an emitted one keeps the v1 id": the id does not depend on the new keys being present."""
    plain = on("t", "go", [suppress(["email"], "7d")], release_on={"event": "stop"})
    events = [ev("g1", "c2", "go", "+0"), ev("x1", "c2", "stop", "+1h")]
    v1 = replay(topo_dir(plain), events).audit
    v11 = replay(topo_dir(with_keys(plain, holdout="0%", mode="live", service=False)), events).audit
    assert v1 == v11 and [r["status"] for r in v1] == ["emitted", "emitted"]


def test_7_3_a_held_out_and_a_shadow_release_differ_in_id(topo_dir):
    """7.3: "the id of a RELEASE that is not emitted also covers its status and cause"."""
    doc = on("t", "go", [suppress(["email"], "7d")], release_on={"event": "stop"})
    events = [ev("g1", "c1", "go", "+0"), ev("x1", "c1", "stop", "+1h")]
    ids = set()
    for keys in ({"holdout": "100%"}, {"mode": "shadow"}, {}):
        [r] = pick(replay(topo_dir(with_keys(doc, **keys)), events).audit, kind="RELEASE")
        ids.add(r["decision_id"])
    assert len(ids) == 3


def test_7_3_the_goal_of_a_held_out_match_is_tracked(topo_dir):
    """7.3 + 7.4: held-out matches are fired matches: their goals are tracked with their arm."""
    d = topo_dir(held(with_keys(on("held", "go", [engage("sms")]), goal=goal("buy", "1d"))))
    res = replay(d, [ev("g1", "c1", "go", "+0")], until=iso("+2d"))
    assert status_of(pick(res.audit, kind="GOAL")) == [("held", "GOAL", "", "missed", "holdout_topology")]
