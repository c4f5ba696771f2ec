"""Contract section 3.3: actions under `then` (suppress, engage) and templates."""

from __future__ import annotations

from .helpers import (
    E,
    S,
    brief,
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


def fields(decisions, *names):
    return [tuple(d[n] for n in names) for d in decisions]


# ------------------------------------------------------------------- suppress


def test_3_3_suppress_one_decision_per_channel_default_category_star(topo_dir):
    """3.3 suppress: one SUPPRESS per channel; category defaults to "*"; active
    [effective_at, effective_at + for) -> expires_at = effective_at + for."""
    d = topo_dir(on("s", "ping", [suppress(["sms", "ads", "email"], "14d")], version=3))
    res = replay(d, [ev("e1", "c1", "ping", "+0")])
    assert brief(res.decisions) == [
        S("ads", "+0", ["e1"]),
        S("email", "+0", ["e1"]),
        S("sms", "+0", ["e1"]),
    ]
    assert (
        fields(res.decisions, "expires_at", "action", "not_before", "topology", "topology_version", "customer_id")
        == [(iso("+14d"), None, None, "s", 3, "c1")] * 3
    )


def test_3_3_suppress_literal_category(topo_dir):
    """3.3 suppress: `category` may be a plain string."""
    d = topo_dir(on("s", "ping", [suppress(["email"], "1h", category="phone")]))
    res = replay(d, [ev("e1", "c1", "ping", "+0")])
    assert brief(res.decisions) == [S("email", "+0", ["e1"], category="phone")]
    assert res.decisions[0]["expires_at"] == iso("+1h")


def test_3_3_suppress_explicit_star_category(topo_dir):
    """3.3 suppress: `category: "*"` means all categories."""
    d = topo_dir(on("s", "ping", [suppress(["email"], "1h", category="*")]))
    res = replay(d, [ev("e1", "c1", "ping", "+0")])
    assert brief(res.decisions) == [S("email", "+0", ["e1"], category="*")]


def test_3_3_suppress_template_category_from_an_earlier_step(topo_dir):
    """3.3: `"{bought.category}"` is attribute `category` of the event bound by `as: bought`."""
    d = topo_dir(
        topo(
            "ppf",
            {"sequence": [{"as": "bought", "event": "purchase"}, {"as": "failed", "event": "activation_failed"}]},
            [suppress(["ads", "email"], "14d", category="{bought.category}")],
        )
    )
    recs = [
        ev("p1", "c1", "purchase", "+0", category="phone"),
        ev("f1", "c1", "activation_failed", "+1h", category="other"),
    ]
    res = replay(d, recs)
    assert brief(res.decisions) == [
        S("ads", "+1h", ["p1", "f1"], category="phone"),
        S("email", "+1h", ["p1", "f1"], category="phone"),
    ]
    assert {x["expires_at"] for x in res.decisions} == {iso("+14d1h")}


# --------------------------------------------------------------------- engage


def test_3_3_engage_fields(topo_dir):
    """3.3 engage: one ENGAGE; `expires` sets expires_at; not_before = effective_at
    without quiet hours; category as given."""
    d = topo_dir(on("g", "ping", [engage("call_center", "call_back", category="phone", expires="24h")], version=2))
    res = replay(d, [ev("e1", "c1", "ping", "+5m")])
    assert fields(
        res.decisions,
        "kind",
        "channel",
        "action",
        "category",
        "effective_at",
        "expires_at",
        "not_before",
        "evidence",
        "topology",
        "topology_version",
    ) == [("ENGAGE", "call_center", "call_back", "phone", iso("+5m"), iso("+1d5m"), iso("+5m"), ["e1"], "g", 2)]


def test_3_3_engage_without_expires_or_category(topo_dir):
    """3.3 engage: `category` optional (null); no `expires` -> expires_at null."""
    d = topo_dir(on("g", "ping", [engage("email", "hello")]))
    res = replay(d, [ev("e1", "c1", "ping", "+0")])
    assert fields(res.decisions, "kind", "channel", "action", "category", "expires_at", "not_before") == [
        ("ENGAGE", "email", "hello", None, None, iso("+0"))
    ]


def test_3_3_actions_all_applied(topo_dir):
    """3.3: every action under `then` is applied for one match."""
    d = topo_dir(on("g", "ping", [suppress(["ads"], "1d"), engage("email", "a1"), engage("push", "a2")]))
    res = replay(d, [ev("e1", "c1", "ping", "+0")])
    assert brief(res.decisions, "action") == [
        (*E("email", "+0", ["e1"]), "a1"),
        (*E("push", "+0", ["e1"]), "a2"),
        (*S("ads", "+0", ["e1"]), None),
    ]


# ------------------------------------------------------------------ templates


def test_3_3_template_in_action(topo_dir):
    """3.3: templates may stand in `action`."""
    d = topo_dir(on("g", "ping", [engage("push", "{o.region}")], as_="o"))
    res = replay(d, [ev("e1", "c1", "ping", "+0", region="north")])
    assert [x["action"] for x in res.decisions] == ["north"]


def test_3_3_template_inside_a_longer_action(topo_dir):
    """3.3 + notes: a template may stand inside a longer string: outage_update_{outage.region}."""
    d = topo_dir(on("g", "ping", [engage("push", "outage_update_{outage.region}")], as_="outage"))
    res = replay(d, [ev("e1", "c1", "ping", "+0", region="north")])
    assert [x["action"] for x in res.decisions] == ["outage_update_north"]


def test_3_3_two_templates_in_one_value(topo_dir):
    """Notes: templates may stand anywhere inside `category` and `action` (several of them)."""
    d = topo_dir(on("g", "ping", [engage("push", "x_{e.a}_{e.b}", category="{e.b}-{e.a}")]))
    res = replay(d, [ev("e1", "c1", "ping", "+0", a="1", b="2")])
    assert fields(res.decisions, "action", "category") == [("x_1_2", "2-1")]


def test_3_3_channel_template(topo_dir):
    """3.3: `"{name.channel}"` is the bound event's channel (not an attribute called channel)."""
    d = topo_dir(on("g", "ping", [engage("email", "via_{e.channel}", category="{e.channel}")]))
    res = replay(d, [ev("e1", "c1", "ping", "+0", "store", attributes={"channel": "web"})])
    assert fields(res.decisions, "action", "category") == [("via_store", "store")]


def test_3_3_missing_template_value_skips_that_action_only(topo_dir):
    """3.3: a template whose value is missing skips that action; the skip is counted and kept
    in the audit with status `skipped` (cause `template <text>`); other actions still happen."""
    d = topo_dir(on("g", "ping", [suppress(["ads"], "1d"), engage("email", "hi", category="{e.category}")]))
    res = replay(d, [ev("e1", "c1", "ping", "+0")])
    assert brief(res.decisions) == [S("ads", "+0", ["e1"])]
    skipped = pick(res.audit, kind="ENGAGE")
    assert [(x["channel"], x["status"], x["cause"], x["evidence"]) for x in skipped] == [
        ("email", "skipped", "template {e.category}", ["e1"])
    ]
    assert counts(res.summary) == {"SUPPRESS": {"emitted": 1}, "ENGAGE": {"skipped": 1}}


def test_3_3_missing_template_in_action_skips(topo_dir):
    """3.3: a missing value in an `action` template skips the engagement."""
    d = topo_dir(on("g", "ping", [engage("push", "outage_update_{o.region}")], as_="o"))
    res = replay(d, [ev("e1", "c1", "ping", "+0", other="x")])
    assert res.decisions == []
    [a] = res.audit
    assert (a["kind"], a["channel"], a["status"]) == ("ENGAGE", "push", "skipped")
    assert a["cause"] in ("template outage_update_{o.region}", "template {o.region}")


def test_3_3_missing_channel_for_channel_template_skips(topo_dir):
    """3.3: `{name.channel}` with an event without channel -> value missing -> skipped."""
    d = topo_dir(on("g", "ping", [engage("email", "hi", category="{e.channel}")]))
    res = replay(d, [ev("e1", "c1", "ping", "+0")])
    assert res.decisions == []
    assert [(a["kind"], a["status"], a["cause"]) for a in res.audit] == [("ENGAGE", "skipped", "template {e.channel}")]


def test_3_3_missing_template_in_suppress_category_skips_the_suppression(topo_dir):
    """3.3: a missing value in a suppress `category` template skips the suppression (audited as
    skipped); it then blocks nothing."""
    d = topo_dir(
        on("g", "ping", [suppress(["email"], "1d", category="{e.category}"), engage("email", "hi", category="shoes")])
    )
    res = replay(d, [ev("e1", "c1", "ping", "+0")])
    assert brief(res.decisions) == [E("email", "+0", ["e1"], category="shoes")]
    sup = pick(res.audit, kind="SUPPRESS")
    assert sup and all((x["status"], x["cause"]) == ("skipped", "template {e.category}") for x in sup)
    assert counts(res.summary)["ENGAGE"] == {"emitted": 1}
    assert counts(res.summary)["SUPPRESS"].get("skipped", 0) >= 1
    assert counts(res.summary)["SUPPRESS"].get("emitted", 0) == 0


def test_3_3_empty_attribute_value_is_not_missing(topo_dir):
    """3.3: an attribute present with the empty string has a value (only a missing one skips)."""
    d = topo_dir(on("g", "ping", [engage("email", "hi_{e.sku}")]))
    res = replay(d, [ev("e1", "c1", "ping", "+0", sku="")])
    assert [x["action"] for x in res.decisions] == ["hi_"]


# ------------------------------------------------------------------ priority


def two_sms(pa, pb, ea=None, eb=None):
    a = on("alpha", "go", [engage("sms", "from_alpha", priority=ea)], priority=pa)
    b = on("beta", "go", [engage("sms", "from_beta", priority=eb)], priority=pb)
    return a, b


def winner(d):
    res = replay(d, [ev("g1", "c1", "go", "+0")])
    assert len(res.decisions) == 1
    return res.decisions[0]["topology"]


def test_3_3_engage_priority_defaults_to_topology_priority(topo_dir):
    """3.3: engage `priority` defaults to the topology's: alpha 70 (engage default) beats an engage
    priority 60 of beta (topology 80)."""
    assert winner(topo_dir(*two_sms(70, 80, eb=60))) == "alpha"


def test_3_3_engage_priority_overrides_topology_priority(topo_dir):
    """3.3: an engage's own priority is what arbitration compares."""
    assert winner(topo_dir(*two_sms(40, 80, ea=90))) == "alpha"


def test_3_3_topology_priority_default_50_beats_49(topo_dir):
    """3: `priority` defaults to 50."""
    assert winner(topo_dir(*two_sms(None, 49))) == "alpha"


def test_3_3_topology_priority_default_50_loses_to_51(topo_dir):
    """3: `priority` defaults to 50."""
    assert winner(topo_dir(*two_sms(None, 51))) == "beta"
