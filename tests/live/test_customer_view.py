"""Runtime.customer_view: the readable view the API serves, from the runtime's own state and the
decisions it published (held-out, shadow and GOAL records included)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from streams.decisions import Status
from tests.live import test_runtime_arms as arms
from tests.live.test_runtime import NOW, Log, event, records, run


def test_the_view_of_a_customer_is_exact(tmp_path: Path) -> None:
    rt = arms.make(tmp_path, Log())
    run(rt.handle(records(("c1", event("g", "c1", "go", NOW)), ("c1", event("b", "c1", "buy", NOW + 60_000)))))
    view = rt.customer_view("c1")
    assert view == EXPECTED
    raw = rt.customer_view("c1", raw=True)
    assert raw is not None and raw.pop("state")["e"][0][2] == "g"
    assert raw == view


def test_an_erased_customer_s_recent_decisions_are_forgotten(tmp_path: Path) -> None:
    rt = arms.make(tmp_path, Log())
    run(rt.handle(records(("c1", event("g", "c1", "go", NOW)))))
    assert rt.recent.of("c1")
    run(rt.handle(records(("c1", event("x", "c1", "tactful.erase", NOW + 1000)), start=1)))
    assert rt.recent.of("c1") == [] and rt.customer_view("c1") is None
    run(rt.handle(records(("c1", event("b", "c1", "buy", NOW + 2000)), start=2)))
    view = rt.customer_view("c1")
    assert view is not None and view["recent_decisions"] == []


EXPECTED: dict[str, Any] = {
    "customer_id": "c1",
    "partition": 3,
    "stream_time": "2026-09-21T14:14:20.000Z",
    "watermark": "2026-09-21T14:04:20.000Z",
    "events": [
        {"at": "2026-09-21T14:13:20.000Z", "type": "go", "channel": "web", "event_id": "g", "attributes": {}},
        {"at": "2026-09-21T14:14:20.000Z", "type": "buy", "channel": "web", "event_id": "b", "attributes": {}},
    ],
    "matches_in_progress": [],
    "active_suppressions": [],
    "held_suppressions": [
        {
            "topology": "held",
            "description": None,
            "channel": "ads",
            "category": "*",
            "since": "2026-09-21T14:13:20.000Z",
            "until": "2026-09-22T14:13:20.000Z",
            "reason": "held v1 matched go: no any marketing on ads until 2026-09-22T14:13:20.000Z.",
            "status": "held_out",
            "cause": "holdout_topology",
            "decision_id": "40aeaf43136d74686195bd6f050251d2",
        },
        {
            "topology": "shadowed",
            "description": None,
            "channel": "ads",
            "category": "*",
            "since": "2026-09-21T14:13:20.000Z",
            "until": "2026-09-22T14:13:20.000Z",
            "reason": "shadowed v1 matched go: no any marketing on ads until 2026-09-22T14:13:20.000Z.",
            "status": "shadow",
            "cause": "shadow",
            "decision_id": "250853f257844dda2d8baa5453e5bb83",
        },
    ],
    "recent_decisions": [
        {
            "at": "2026-09-21T14:13:20.000Z",
            "kind": "SUPPRESS",
            "topology": "held",
            "version": 1,
            "channel": "ads",
            "action": None,
            "category": "*",
            "status": "held_out",
            "cause": "holdout_topology",
            "reason": "held v1 matched go: no any marketing on ads until "
            "2026-09-22T14:13:20.000Z. Held out, never sent: the customer is in this "
            "topology's control group.",
            "decision_id": "40aeaf43136d74686195bd6f050251d2",
        },
        {
            "at": "2026-09-21T14:13:20.000Z",
            "kind": "ENGAGE",
            "topology": "held",
            "version": 1,
            "channel": "email",
            "action": "held_mail",
            "category": None,
            "status": "held_out",
            "cause": "holdout_topology",
            "reason": "held v1 matched go: held_mail on email. Held out, never sent: the customer "
            "is in this topology's control group.",
            "decision_id": "f625a403cc19386380e6cffdea02e9d3",
        },
        {
            "at": "2026-09-21T14:13:20.000Z",
            "kind": "SUPPRESS",
            "topology": "shadowed",
            "version": 1,
            "channel": "ads",
            "action": None,
            "category": "*",
            "status": "shadow",
            "cause": "shadow",
            "reason": "shadowed v1 matched go: no any marketing on ads until "
            "2026-09-22T14:13:20.000Z. Shadow, never sent: the topology runs in shadow "
            "mode.",
            "decision_id": "250853f257844dda2d8baa5453e5bb83",
        },
        {
            "at": "2026-09-21T14:13:20.000Z",
            "kind": "ENGAGE",
            "topology": "shadowed",
            "version": 1,
            "channel": "push",
            "action": "shadow_push",
            "category": None,
            "status": "shadow",
            "cause": "shadow",
            "reason": "shadowed v1 matched go: shadow_push on push. Shadow, never sent: the "
            "topology runs in shadow mode.",
            "decision_id": "7cad20e57436003e583b95fe3e3c4936",
        },
        {
            "at": "2026-09-21T14:13:20.000Z",
            "kind": "ENGAGE",
            "topology": "treated",
            "version": 1,
            "channel": "sms",
            "action": "treated_sms",
            "category": None,
            "status": "emitted",
            "cause": None,
            "reason": "treated v1 matched go: treated_sms on sms.",
            "decision_id": "61993791ed459d22d9925e30803778e3",
        },
        {
            "at": "2026-09-21T14:14:20.000Z",
            "kind": "GOAL",
            "topology": "treated",
            "version": 1,
            "channel": None,
            "action": None,
            "category": None,
            "status": "reached",
            "cause": "treated",
            "reason": "treated v1 reached its goal: buy within 1h of the match.",
            "decision_id": "e63d7125ac692e1a2074994d9d44c509",
        },
    ],
    "arms": {"held": "holdout_topology", "shadowed": "shadow", "treated": "treated"},
    "open_goals": [],
    "last_fired": {
        "held": "2026-09-21T14:13:20.000Z",
        "shadowed": "2026-09-21T14:13:20.000Z",
        "treated": "2026-09-21T14:13:20.000Z",
    },
}


def test_recent_decisions_are_bounded_per_customer_and_in_customers() -> None:
    from dataclasses import replace

    from streams.live.recent import RecentDecisions
    from tests.live.test_metrics_arms import decision

    recent = RecentDecisions(customers=2, per_customer=3)
    base = decision("t", Status.EMITTED, None)
    recent.add(replace(base, customer_id="a", decision_id=f"a{i}") for i in range(5))
    recent.add([replace(base, customer_id="b", decision_id="b0")])
    assert [d.decision_id for d in recent.of("a")] == ["a2", "a3", "a4"]  # the newest three
    recent.add([replace(base, customer_id="a", decision_id="a5")])  # a is the most recent again
    recent.add([replace(base, customer_id="c", decision_id="c0")])  # so b, the least recent, goes
    assert (len(recent), recent.of("b"), [d.decision_id for d in recent.of("c")]) == (2, [], ["c0"])
    assert [d.decision_id for d in recent.of("a")] == ["a3", "a4", "a5"]
