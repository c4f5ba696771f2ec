"""Contract section 5 (decision fields, ids) and the output order of section 6."""

from __future__ import annotations

import re

from .helpers import (
    DECISION_FIELDS,
    ISO_MS_Z,
    counts,
    engage,
    ev,
    iso,
    on,
    pick,
    replay,
    suppress,
    topo,
)

HEX32 = re.compile(r"^[0-9a-f]{32}$")


def full_dir(topo_dir, version=1):
    return topo_dir(
        on(
            "hold",
            "trigger",
            [
                suppress(["email", "sms"], "7d", category="phone"),
                engage("call_center", "help", category="phone", expires="24h"),
            ],
            release_on={"event": "resolved"},
            version=version,
            priority=90,
        ),
        on("promo", "go", [engage("email", "sale")], priority=10),
    )


FULL_RECS = [
    ev("t1", "c1", "trigger", "+0"),
    ev("g1", "c1", "go", "+10m"),
    ev("r1", "c1", "resolved", "+1h"),
]


def test_5_decision_fields_exactly(topo_dir):
    """5/6: each emitted decision has exactly the section-5 fields."""
    res = replay(full_dir(topo_dir), FULL_RECS)
    assert {d["kind"] for d in res.decisions} == {"SUPPRESS", "ENGAGE", "RELEASE"}
    for d in res.decisions:
        assert set(d) == DECISION_FIELDS, d


def test_5_audit_has_status_and_cause(topo_dir):
    """5/6: audit entries carry the section-5 fields plus status and cause."""
    res = replay(full_dir(topo_dir), FULL_RECS)
    for a in res.audit:
        assert set(a) == DECISION_FIELDS | {"status", "cause"}, a
        assert a["status"] in {"emitted", "blocked", "outranked", "skipped"}
        assert (a["cause"] is None) == (a["status"] == "emitted")


def test_5_times_are_iso_utc_with_millis_and_z(topo_dir):
    """6: times as ISO-8601 UTC strings with milliseconds and `Z`."""
    res = replay(full_dir(topo_dir), FULL_RECS)
    for d in res.decisions:
        for k in ("effective_at", "expires_at", "not_before"):
            if d[k] is not None:
                assert ISO_MS_Z.match(d[k]), (k, d[k])


def test_5_kind_specific_fields(topo_dir):
    """5: action / not_before for ENGAGE only; expires_at: SUPPRESS end, ENGAGE effective +
    expires, RELEASE null (notes); category the category; evidence event ids."""
    res = replay(full_dir(topo_dir, version=4), FULL_RECS)
    rows = [
        (
            d["kind"],
            d["channel"],
            d["action"],
            d["category"],
            d["effective_at"],
            d["expires_at"],
            d["not_before"],
            d["evidence"],
            d["topology"],
            d["topology_version"],
            d["customer_id"],
        )
        for d in res.decisions
    ]
    assert rows == [
        ("ENGAGE", "call_center", "help", "phone", iso("+0"), iso("+24h"), iso("+0"), ["t1"], "hold", 4, "c1"),
        ("SUPPRESS", "email", None, "phone", iso("+0"), iso("+7d"), None, ["t1"], "hold", 4, "c1"),
        ("SUPPRESS", "sms", None, "phone", iso("+0"), iso("+7d"), None, ["t1"], "hold", 4, "c1"),
        ("RELEASE", "email", None, "phone", iso("+1h"), None, None, ["r1"], "hold", 4, "c1"),
        ("RELEASE", "sms", None, "phone", iso("+1h"), None, None, ["r1"], "hold", 4, "c1"),
    ]
    # promo's engagement (category null) was blocked by the "phone" suppression of email
    [blocked] = pick(res.audit, kind="ENGAGE", topology="promo")
    assert (blocked["status"], blocked["category"], blocked["action"]) == ("blocked", None, "sale")


def test_5_reason_is_a_readable_sentence(topo_dir):
    """5: reason is one sentence a person can read (a non-empty string)."""
    res = replay(full_dir(topo_dir), FULL_RECS)
    for d in res.decisions:
        assert isinstance(d["reason"], str) and d["reason"].strip(), d
        assert "\n" not in d["reason"]


def test_5_decision_id_format_and_uniqueness(topo_dir):
    """5 + notes: decision ids are 32 lowercase hex characters, distinct per decision
    (suppressions of one match on different channels differ)."""
    res = replay(full_dir(topo_dir), FULL_RECS)
    ids = [a["decision_id"] for a in res.audit]
    assert all(HEX32.match(i) for i in ids), ids
    assert len(set(ids)) == len(ids)


def test_5_decision_id_is_deterministic_across_runs_and_folders(topo_dir):
    """5: the same topology, version, customer, evidence and action give the same id, across runs
    and across freshly written folders, whatever unrelated input surrounds it."""
    r1 = replay(full_dir(topo_dir), FULL_RECS)
    noise = [ev("n1", "c9", "trigger", "-5m"), ev("n2", "c8", "go", "+5m")]
    r2 = replay(full_dir(topo_dir), noise[:1] + FULL_RECS[:2] + noise[1:] + FULL_RECS[2:])
    key = lambda d: (d["kind"], d["channel"], d["customer_id"], tuple(d["evidence"]))  # noqa: E731
    ids1 = {key(d): d["decision_id"] for d in r1.audit}
    ids2 = {key(d): d["decision_id"] for d in r2.audit if d["customer_id"] == "c1"}
    assert ids1 == ids2


def test_5_decision_id_differs_with_evidence(topo_dir):
    """5: different evidence -> different id (same topology, customer, action)."""
    d = topo_dir(on("p", "go", [engage("email", "x")]))
    res = replay(d, [ev("g1", "c1", "go", "+0"), ev("g2", "c1", "go", "+1m")])
    a, b = (x["decision_id"] for x in res.decisions)
    assert a != b


def test_5_decision_id_differs_with_customer(topo_dir):
    """5: different customer -> different id (same event id text is impossible, so vary customer
    with the same evidence id in separate runs)."""
    d = topo_dir(on("p", "go", [engage("email", "x")]))
    r1 = replay(d, [ev("g1", "c1", "go", "+0")])
    r2 = replay(d, [ev("g1", "c2", "go", "+0")])
    assert r1.decisions[0]["decision_id"] != r2.decisions[0]["decision_id"]


def test_5_decision_id_differs_with_version(topo_dir):
    """5: the topology version is part of the id."""
    r1 = replay(topo_dir(on("p", "go", [engage("email", "x")], version=1)), [ev("g1", "c1", "go", "+0")])
    r2 = replay(topo_dir(on("p", "go", [engage("email", "x")], version=2)), [ev("g1", "c1", "go", "+0")])
    assert r1.decisions[0]["topology_version"] == 1
    assert r2.decisions[0]["topology_version"] == 2
    assert r1.decisions[0]["decision_id"] != r2.decisions[0]["decision_id"]


def test_5_decision_id_differs_with_topology(topo_dir):
    """5: the topology is part of the id."""
    d = topo_dir(on("p", "go", [engage("email", "x")]), on("q", "go", [engage("push", "x")]))
    res = replay(d, [ev("g1", "c1", "go", "+0")])
    a, b = (x["decision_id"] for x in res.decisions)
    assert a != b


def test_5_decision_id_differs_with_action(topo_dir):
    """5: the action is part of the id: two engagements of one match on different channels."""
    d = topo_dir(on("p", "go", [engage("email", "x"), engage("push", "x")]))
    res = replay(d, [ev("g1", "c1", "go", "+0")])
    a, b = (x["decision_id"] for x in res.decisions)
    assert a != b


def test_5_decision_id_same_for_same_match_after_redelivery(topo_dir):
    """5: ids depend on the match, not on arrival order of surrounding events."""
    d = topo_dir(topo("ab", {"sequence": [{"event": "a"}, {"event": "b"}]}, [engage("email", "x")]))
    r1 = replay(d, [ev("a1", "c1", "a", "+0"), ev("b1", "c1", "b", "+1m")])
    r2 = replay(d, [ev("b1", "c1", "b", "+1m"), ev("a1", "c1", "a", "+0")])
    assert r1.decisions == r2.decisions


# --------------------------------------------------------------------- order


def test_6_output_order(topo_dir):
    """6: ordered by effective_at, then customer_id, topology, kind, channel -- not by the order
    in which decisions were made (the absence decision at +5m is made at the end of input)."""
    d = topo_dir(
        on("zz", "go", [suppress(["sms", "ads"], "1d"), engage("push", "x")], priority=90),
        on("aa", "go", [engage("email", "y")], priority=95),
        topo(
            "late_abs",
            {"absence": {"after": {"event": "cart"}, "missing": {"event": "buy"}, "for": "5m"}},
            [engage("app", "z")],
        ),
    )
    recs = [
        ev("k1", "c3", "cart", "+0"),
        ev("g0", "c1", "go", "+3m"),
        ev("g2", "c2", "go", "+10m"),
        ev("g1", "c1", "go", "+10m"),
    ]
    res = replay(d, recs)
    got = [(x["effective_at"], x["customer_id"], x["topology"], x["kind"], x["channel"]) for x in res.decisions]
    t3, t5, t10 = iso("+3m"), iso("+5m"), iso("+10m")

    def block(t, c):
        return [
            (t, c, "aa", "ENGAGE", "email"),
            (t, c, "zz", "ENGAGE", "push"),
            (t, c, "zz", "SUPPRESS", "ads"),
            (t, c, "zz", "SUPPRESS", "sms"),
        ]

    assert got == [
        *block(t3, "c1"),
        (t5, "c3", "late_abs", "ENGAGE", "app"),
        *block(t10, "c1"),
        *block(t10, "c2"),
    ]


def test_6_order_ties_broken_by_decision_id(topo_dir):
    """Notes: decision_id is the last tie-breaker (two engagements of one topology on different
    evaluations at the same instant share all contract keys)."""
    d = topo_dir(on("p", "go", [engage("email", "x")]))
    res = replay(d, [ev("g1", "c1", "go", "+0"), ev("g2", "c1", "go", "+0"), ev("g3", "c1", "go", "+0")])
    ids = [x["decision_id"] for x in res.decisions]
    assert len(ids) == 3 and ids == sorted(ids)


def test_6_audit_is_every_decision_in_the_same_order(topo_dir):
    """6: the audit holds every decision (emitted or not) in output order; its emitted entries
    are exactly the emitted decisions."""
    res = replay(full_dir(topo_dir), FULL_RECS)
    strip = [
        {k: v for k, v in a.items() if k not in ("status", "cause")} for a in res.audit if a["status"] == "emitted"
    ]
    assert strip == res.decisions
    keys = [
        (a["effective_at"], a["customer_id"], a["topology"], a["kind"], a["channel"], a["decision_id"])
        for a in res.audit
    ]
    assert keys == sorted(keys)
    assert len(res.audit) == len(res.decisions) + 1  # promo's blocked engagement


def test_6_summary_counts_decisions_by_kind_and_status(topo_dir):
    """6: the summary counts decisions by kind and status."""
    res = replay(full_dir(topo_dir), FULL_RECS)
    assert counts(res.summary) == {
        "SUPPRESS": {"emitted": 2},
        "ENGAGE": {"emitted": 1, "blocked": 1},
        "RELEASE": {"emitted": 2},
    }
