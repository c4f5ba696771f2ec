"""The report's aggregation over a small crafted audit and its touchpoints, and the JSON shape."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from streams.report import Aggregator, build, render
from streams.report.arms import HoldoutCatalog, TopologyArms
from streams.report.inputs import Source
from streams.report.stats import newcombe

T0 = 1_777_852_800_000  # 2026-05-04T00:00:00Z
MIN = 60_000


def rec(
    decision_id: str,
    customer: str,
    kind: str,
    topology: str,
    evidence: list[str],
    status: str = "emitted",
    cause: str | None = None,
    channel: str | None = "sms",
    at: int = 0,
    **extra: Any,
) -> dict[str, Any]:
    return {
        "decision_id": decision_id,
        "customer_id": customer,
        "kind": kind,
        "channel": channel,
        "action": "nudge_sms" if kind == "ENGAGE" else None,
        "category": None,
        "topology": topology,
        "topology_version": 1,
        "effective_at": T0 + at * MIN,  # the topic's form: epoch ms (a file has ISO strings; both are read)
        "expires_at": None,
        "not_before": None,
        "evidence": evidence,
        "reason": "crafted",
        "status": status,
        "cause": cause,
        **extra,
    }


AUDIT = [
    # cA, treated: an engagement and a suppression emitted; the goal reached with a9.
    rec("d1", "cA", "ENGAGE", "nudge", ["a1", "a2"], at=2),
    rec("d2", "cA", "SUPPRESS", "nudge", ["a1", "a2"], channel="email", at=2),
    rec("g1", "cA", "GOAL", "nudge", ["a1", "a2", "a9"], "reached", "treated", channel=None, at=9),
    # guard's engagement for cA lost arbitration to d1.
    rec("d3", "cA", "ENGAGE", "guard", ["a2"], "outranked", "outranked_by d1", at=2),
    # cB, in the global control group: held out, goal missed.
    rec("d4", "cB", "ENGAGE", "nudge", ["b1"], "held_out", "holdout_global", at=1),
    rec("g2", "cB", "GOAL", "nudge", ["b1"], "missed", "holdout_global", channel=None, at=100),
    # cC, in nudge's own control group: held out, goal reached.
    rec("d5", "cC", "ENGAGE", "nudge", ["c1"], "held_out", "holdout_topology", at=1),
    rec("g3", "cC", "GOAL", "nudge", ["c1", "c5"], "reached", "holdout_topology", channel=None, at=5),
    # cD: guard suppresses sms, so nudge's engagement is blocked; no record shows its arm, its goal is open.
    rec("d9", "cD", "SUPPRESS", "guard", ["x1"], at=0),
    rec("d6", "cD", "ENGAGE", "nudge", ["x2"], "blocked", "suppressed_by d9", at=1),
    rec("d10", "cD", "RELEASE", "guard", ["x3"], at=3),
    # cE: blocked by a cap; an explicit arm field says which arm.
    rec("d7", "cE", "ENGAGE", "nudge", ["e1"], "blocked", "cap sms max 2 per 7d", at=1, arm="holdout_topology"),
    # A shadow topology.
    rec("d8", "cF", "SUPPRESS", "trial", ["f1"], "shadow", "shadow", at=1),
]


def ev(event_id: str, customer: str, kind: str, at: int, channel: str | None = None, **attrs: str) -> dict[str, Any]:
    e: dict[str, Any] = {"event_id": event_id, "customer_id": customer, "type": kind, "occurred_at": T0 + at * MIN}
    if channel:
        e["channel"] = channel
    if attrs:
        e["attributes"] = attrs
    return e


EVENTS = [
    ev("a0", "cA", "page_view", 0, "web"),
    ev("a1", "cA", "purchase", 1, "store"),
    ev("a2", "cA", "activation_failed", 2, "app"),
    ev("o1", "cA", "decision.delivered", 3, "sms", decision_id="d1"),
    ev("o2", "cA", "decision.opened", 4, "sms", decision_id="d1"),
    ev("o3", "cA", "decision.opened", 5, "sms", decision_id="d1"),  # reported twice: counted once
    ev("o4", "cA", "decision.complained", 6, "email", decision_id="zzz"),  # a decision not in this audit
    ev("a9", "cA", "activation_succeeded", 9, "app"),
    ev("b1", "cB", "purchase", 1, "web"),
    ev("x2", "cD", "purchase", 1, "web"),
]


def report(catalog: HoldoutCatalog | None = None, customer: str | None = None) -> dict[str, Any]:
    agg = Aggregator(catalog, customer=customer)
    agg.add_audit_records(AUDIT)
    agg.add_touchpoint_records(EVENTS)
    return agg.result()


def topology(data: dict[str, Any], name: str) -> dict[str, Any]:
    return next(t for t in data["topologies"] if t["topology"] == name)


def test_matches_by_arm_from_the_records() -> None:
    data = report()
    assert topology(data, "nudge")["matches"] == {
        "treated": 1,
        "holdout_global": 1,
        "holdout_topology": 2,  # cC from its held-out decision, cE from its arm field
        "unknown": 1,  # cD: blocked, no goal record, no catalog
    }
    # guard: cD's suppression (emitted: treated) and cA's outranked engagement (no arm shown). A RELEASE is no match.
    assert topology(data, "guard")["matches"] == {"treated": 1, "unknown": 1}
    assert topology(data, "trial")["matches"] == {"shadow": 1}
    assert data["inputs"]["matches"] == 8


def test_a_catalog_decides_the_arms_no_record_shows() -> None:
    catalog = HoldoutCatalog(
        global_holdout=5000, salt="s", topologies={"nudge": TopologyArms(holdout=5000, has_goal=True)}
    )
    data = report(catalog)
    nudge = topology(data, "nudge")["matches"]
    assert "unknown" not in nudge
    expected = {"treated": 1, "holdout_global": 1, "holdout_topology": 2}
    expected[catalog.arm("nudge", "cD")] += 1
    assert nudge == expected
    assert data["inputs"]["arms_from_catalog"] is True


def test_goal_rates_per_arm_and_uplift() -> None:
    goal = topology(report(), "nudge")["goal"]
    assert goal["arms"]["treated"] == {
        "reached": 1,
        "missed": 0,
        "open": 0,
        "rate": 1.0,
        "interval": goal["arms"]["treated"]["interval"],
    }
    assert (goal["arms"]["holdout_global"]["reached"], goal["arms"]["holdout_global"]["missed"]) == (0, 1)
    assert (goal["arms"]["holdout_topology"]["reached"], goal["arms"]["holdout_topology"]["open"]) == (1, 1)
    assert goal["arms"]["unknown"]["open"] == 1
    # Control pools the held-out arms: 1 reached, 1 missed, 1 open.
    assert {k: goal["control"][k] for k in ("reached", "missed", "open", "rate")} == {
        "reached": 1,
        "missed": 1,
        "open": 1,
        "rate": 0.5,
    }
    u = goal["uplift"]
    assert u["absolute"] == pytest.approx(0.5)
    assert u["absolute_interval"] == pytest.approx(list(newcombe(1, 1, 1, 2) or ()))
    assert u["relative"] == pytest.approx(1.0)
    assert u["verdict"] == "not yet significant"
    assert u["incremental_goals"] == pytest.approx(0.5)
    assert topology(report(), "guard")["goal"] is None  # no goal record, no catalog naming a goal


def test_decisions_by_status_and_cause_name_the_topology_behind_an_id() -> None:
    data = report()
    assert topology(data, "nudge")["decisions"] == [
        {"kind": "ENGAGE", "status": "blocked", "cause": "cap sms max 2 per 7d", "count": 1},
        {"kind": "ENGAGE", "status": "blocked", "cause": "suppressed_by guard", "count": 1},
        {"kind": "ENGAGE", "status": "emitted", "cause": None, "count": 1},
        {"kind": "ENGAGE", "status": "held_out", "cause": "holdout_global", "count": 1},
        {"kind": "ENGAGE", "status": "held_out", "cause": "holdout_topology", "count": 1},
        {"kind": "SUPPRESS", "status": "emitted", "cause": None, "count": 1},
    ]
    assert topology(data, "guard")["decisions"] == [
        {"kind": "ENGAGE", "status": "outranked", "cause": "outranked_by nudge", "count": 1},
        {"kind": "RELEASE", "status": "emitted", "cause": None, "count": 1},
        {"kind": "SUPPRESS", "status": "emitted", "cause": None, "count": 1},
    ]


def test_funnel_per_channel_joined_by_decision_id() -> None:
    channels = {c["channel"]: c for c in report()["channels"]}
    sms = channels["sms"]
    assert (sms["sent"], sms["delivered"], sms["opened"], sms["clicked"]) == (1, 1, 1, 0)
    assert sms["topologies"] == [
        {"topology": "nudge", **{k: sms[k] for k in sms if k not in ("channel", "topologies")}}
    ]
    email = channels["email"]  # d2 is a suppression: nothing sent; the complaint names a decision not in the audit
    assert (email["sent"], email["complained"]) == (0, 1)
    assert email["topologies"][0]["topology"] == "(not in the audit)"


def test_sankey_follows_the_path_into_the_trigger_and_on_to_the_goal() -> None:
    sankey = report()["sankey"]["topologies"]["nudge"]
    nodes = [(n["stage"], n["label"]) for n in sankey["nodes"]]
    for node in [
        ("-2", "page_view · web"),
        ("-1", "purchase · store"),
        ("trigger event", "activation_failed · app"),
        ("topology", "nudge"),
        ("arm", "treated"),
        ("decision", "emitted"),
        ("goal", "goal reached · treated"),
        ("goal", "goal missed · held out"),
    ]:
        assert node in nodes
    links = {(nodes[x["source"]], nodes[x["target"]]): x["value"] for x in sankey["links"]}
    assert links[(("topology", "nudge"), ("arm", "holdout_topology"))] == 2
    assert links[(("trigger event", "activation_failed · app"), ("topology", "nudge"))] == 1
    # Every match enters the topology node once.
    assert sum(v for (a, b), v in links.items() if b == ("topology", "nudge")) <= 5
    assert sum(v for (a, b), v in links.items() if a == ("topology", "nudge")) == 5


def test_one_customers_timeline_answers_why() -> None:
    customer = report(customer="cA")["customer"]
    assert customer["customer_id"] == "cA"
    whats = [(e["what"], e.get("type") or e.get("kind")) for e in customer["timeline"]]
    assert whats[:3] == [("event", "page_view"), ("event", "purchase"), ("event", "activation_failed")]
    assert ("goal", "GOAL") in whats
    outranked = next(e for e in customer["timeline"] if e.get("status") == "outranked")
    assert outranked["cause"] == "outranked_by nudge"
    assert [(m["topology"], m["arm"], m["decision"], m["goal"]) for m in customer["matches"]] == [
        ("guard", "unknown", "outranked", "no goal"),
        ("nudge", "treated", "emitted", "goal reached"),
    ]
    times = [e["at"] for e in customer["timeline"]]
    assert times == sorted(times)


def test_unreadable_records_are_counted_not_fatal() -> None:
    agg = Aggregator()
    agg.add_audit({"kind": "ENGAGE"})
    agg.add_audit({**AUDIT[0], "evidence": []})
    agg.add_touchpoint({"customer_id": 3})
    data = agg.result()
    assert (data["inputs"]["audit_records_unreadable"], data["inputs"]["touchpoints_unreadable"]) == (2, 1)


def test_an_empty_audit_gives_an_empty_report() -> None:
    data = Aggregator().result()
    assert data["topologies"] == [] and data["channels"] == []
    assert data["sankey"]["all"] == {"nodes": [], "links": []}


def _shape(value: Any) -> Any:
    if isinstance(value, dict):
        return sorted(value)
    return type(value).__name__


def test_json_shape() -> None:
    source = Source("audit", iter(AUDIT), 0, lambda: 0)
    data = orjson.loads(render.to_json(build(source, Source("events", iter(EVENTS), 0, lambda: 0), customer="cA")))
    assert sorted(data) == ["channels", "customer", "inputs", "sankey", "topologies"]
    assert sorted(data["inputs"]) == [
        "arms_from_catalog",
        "audit_records",
        "audit_records_unreadable",
        "matches",
        "path_length",
        "touchpoints",
        "touchpoints_unreadable",
    ]
    nudge = topology(data, "nudge")
    assert sorted(nudge) == ["decisions", "goal", "matches", "matches_total", "topology", "versions"]
    assert sorted(nudge["goal"]) == ["arms", "control", "uplift"]
    assert sorted(nudge["goal"]["control"]) == ["interval", "missed", "open", "rate", "reached"]
    assert sorted(nudge["goal"]["uplift"]) == [
        "absolute",
        "absolute_interval",
        "incremental_goals",
        "incremental_interval",
        "relative",
        "relative_interval",
        "verdict",
    ]
    stages = ["delivered", "opened", "clicked", "converted", "dismissed", "complained", "unsubscribed", "failed"]
    assert sorted(data["channels"][0]) == sorted(["channel", "sent", *stages, "topologies"])
    assert sorted(data["sankey"]) == ["all", "topologies"]
    assert sorted(data["sankey"]["all"]) == ["links", "nodes"]
    assert sorted(data["sankey"]["all"]["nodes"][0]) == ["label", "stage"]
    assert sorted(data["sankey"]["all"]["links"][0]) == ["source", "target", "value"]
    assert sorted(data["customer"]) == ["customer_id", "matches", "sankey", "timeline"]
    assert nudge["versions"] == [1]
    assert nudge["matches_total"] == 5


def test_a_reached_goal_needs_its_goal_event() -> None:
    agg = Aggregator()
    agg.add_audit(rec("g9", "cZ", "GOAL", "nudge", ["only"], "reached", "treated", channel=None))
    assert agg.result()["inputs"]["audit_records_unreadable"] == 1
