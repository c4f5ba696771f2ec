"""The readable customer view (streams.engine.explain): matches in progress with the steps still
missing, near misses, suppressions and blocked decisions named by topology and reason."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from streams.decisions import Arm, Decision, Kind, Status
from streams.engine import CustomerState, Engine
from streams.engine.explain import explain, why
from streams.engine.state import Suppression
from streams.events import validate_event
from streams.topology import load_folder

T0 = 1_790_000_000_000  # 2026-09-21T14:13:20Z
MIN = 60_000

CATALOG = {
    "policies.yaml": """
        lateness: 10m
        retention: 30d
        frequency_caps:
          - {channel: email, max: 1, per: 7d}
    """,
    "a_pause.yaml": """
        topology: a_pause
        version: 1
        description: A complaint pauses every e-mail for a week.
        when: {sequence: [{event: complaint}]}
        then:
          - suppress: {channels: [email], category: "*", for: 7d}
    """,
    "b_welcome.yaml": """
        topology: b_welcome
        version: 2
        when:
          within: 7d
          sequence:
            - {event: signup}
            - {event: verify, within: 1d}
            - {event: first_order, where: {shop: [web, app]}}
        then:
          - engage: {channel: email, action: welcome}
    """,
    "c_browse.yaml": """
        topology: c_browse
        version: 1
        when: {count: {event: page_view, at_least: 3, within: 1h}}
        then:
          - engage: {channel: push, action: browse_offer}
    """,
    "d_cart.yaml": """
        topology: d_cart
        version: 1
        when:
          absence:
            after: {event: cart_add}
            missing: {event: purchase}
            for: 24h
        then:
          - engage: {channel: email, action: cart_reminder}
    """,
    "e_promo.yaml": """
        topology: e_promo
        version: 1
        holdout: 100%
        goal: {event: purchase, within: 1d}
        when: {sequence: [{event: login}]}
        then:
          - engage: {channel: email, action: promo}
    """,
}


def catalog(folder: Path) -> Engine:
    for name, text in CATALOG.items():
        (folder / name).write_text("\n".join(line[8:] for line in text.splitlines()))
    return Engine(load_folder(folder))


def feed(engine: Engine, state: CustomerState, *events: tuple[str, str, int, dict[str, str]]) -> list[Decision]:
    out: list[Decision] = []
    for eid, etype, at, attrs in events:
        ev = validate_event(
            {"event_id": eid, "customer_id": "c1", "type": etype, "occurred_at": at, "channel": "web",
             "attributes": attrs or None}
        )  # fmt: skip
        out.extend(engine.on_event(state, ev))
    return out


def history(folder: Path) -> tuple[Engine, CustomerState, list[Decision]]:
    engine = catalog(folder)
    state = CustomerState()
    made = feed(
        engine,
        state,
        ("e1", "complaint", T0, {}),
        ("e2", "signup", T0 + 1 * MIN, {}),
        ("e3", "verify", T0 + 2 * MIN, {}),
        ("e4", "page_view", T0 + 3 * MIN, {}),
        ("e5", "page_view", T0 + 4 * MIN, {}),
        ("e6", "cart_add", T0 + 5 * MIN, {}),
        ("e7", "login", T0 + 6 * MIN, {}),
    )
    return engine, state, made


def test_the_view_of_a_crafted_state_is_exact(tmp_path: Path) -> None:
    engine, state, made = history(tmp_path)
    view = explain(engine, "c1", state, T0 + 10 * MIN, made)
    assert view == EXPECTED


EXPECTED: dict[str, Any] = {
    "events": [
        {"at": "2026-09-21T14:13:20.000Z", "type": "complaint", "channel": "web", "event_id": "e1", "attributes": {}},
        {"at": "2026-09-21T14:14:20.000Z", "type": "signup", "channel": "web", "event_id": "e2", "attributes": {}},
        {"at": "2026-09-21T14:15:20.000Z", "type": "verify", "channel": "web", "event_id": "e3", "attributes": {}},
        {"at": "2026-09-21T14:16:20.000Z", "type": "page_view", "channel": "web", "event_id": "e4", "attributes": {}},
        {"at": "2026-09-21T14:17:20.000Z", "type": "page_view", "channel": "web", "event_id": "e5", "attributes": {}},
        {"at": "2026-09-21T14:18:20.000Z", "type": "cart_add", "channel": "web", "event_id": "e6", "attributes": {}},
        {"at": "2026-09-21T14:19:20.000Z", "type": "login", "channel": "web", "event_id": "e7", "attributes": {}},
    ],
    "matches_in_progress": [
        {
            "topology": "b_welcome",
            "version": 2,
            "condition": "sequence",
            "progress": "2 of 3",
            "near_miss": True,
            "open": True,
            "complete_by": "2026-09-28T14:14:20.000Z",
            "done": [
                {
                    "step": 1,
                    "event": "signup",
                    "matched": {
                        "at": "2026-09-21T14:14:20.000Z",
                        "type": "signup",
                        "channel": "web",
                        "event_id": "e2",
                        "attributes": {},
                    },
                },
                {
                    "step": 2,
                    "event": "verify",
                    "matched": {
                        "at": "2026-09-21T14:15:20.000Z",
                        "type": "verify",
                        "channel": "web",
                        "event_id": "e3",
                        "attributes": {},
                    },
                },
            ],
            "missing": [{"step": 3, "event": "first_order where shop in [app, web]"}],
        },
        {
            "topology": "c_browse",
            "version": 1,
            "condition": "count",
            "progress": "2 of 3",
            "near_miss": True,
            "open": True,
            "complete_by": "2026-09-21T15:16:20.000Z",
            "done": [
                {
                    "at": "2026-09-21T14:16:20.000Z",
                    "type": "page_view",
                    "channel": "web",
                    "event_id": "e4",
                    "attributes": {},
                },
                {
                    "at": "2026-09-21T14:17:20.000Z",
                    "type": "page_view",
                    "channel": "web",
                    "event_id": "e5",
                    "attributes": {},
                },
            ],
            "missing": [{"event": "page_view", "more": 1, "within": "1h"}],
        },
        {
            "topology": "d_cart",
            "version": 1,
            "condition": "absence",
            "progress": "1 of 2",
            "near_miss": False,
            "open": True,
            "complete_by": "2026-09-22T14:18:20.000Z",
            "done": [
                {
                    "step": 1,
                    "event": "cart_add",
                    "matched": {
                        "at": "2026-09-21T14:18:20.000Z",
                        "type": "cart_add",
                        "channel": "web",
                        "event_id": "e6",
                        "attributes": {},
                    },
                }
            ],
            "missing": [{"step": 2, "no_event": "purchase", "until": "2026-09-22T14:18:20.000Z"}],
        },
    ],
    "active_suppressions": [
        {
            "topology": "a_pause",
            "description": "A complaint pauses every e-mail for a week.",
            "channel": "email",
            "category": "*",
            "since": "2026-09-21T14:13:20.000Z",
            "until": "2026-09-28T14:13:20.000Z",
            "reason": "a_pause v1 matched complaint: no any marketing on email until 2026-09-28T14:13:20.000Z.",
            "status": "emitted",
            "cause": None,
            "decision_id": "58749f8464631683f1937a649a01bc61",
        }
    ],
    "held_suppressions": [],
    "recent_decisions": [
        {
            "at": "2026-09-21T14:13:20.000Z",
            "kind": "SUPPRESS",
            "topology": "a_pause",
            "version": 1,
            "channel": "email",
            "action": None,
            "category": "*",
            "status": "emitted",
            "cause": None,
            "reason": "a_pause v1 matched complaint: no any marketing on email until 2026-09-28T14:13:20.000Z.",
            "decision_id": "58749f8464631683f1937a649a01bc61",
        },
        {
            "at": "2026-09-21T14:19:20.000Z",
            "kind": "ENGAGE",
            "topology": "e_promo",
            "version": 1,
            "channel": "email",
            "action": "promo",
            "category": None,
            "status": "blocked",
            "cause": "suppressed_by 58749f8464631683f1937a649a01bc61",
            "reason": "e_promo v1 matched login: promo on email. Blocked by a_pause's suppression "
            "of any marketing on email, in force until 2026-09-28T14:13:20.000Z (A "
            "complaint pauses every e-mail for a week).",
            "decision_id": "060f18abacfcd13d9db8c5393006d234",
        },
    ],
    "arms": {
        "a_pause": "treated",
        "b_welcome": "treated",
        "c_browse": "treated",
        "d_cart": "treated",
        "e_promo": "holdout_topology",
    },
    "open_goals": [
        {
            "topology": "e_promo",
            "version": 1,
            "arm": "holdout_topology",
            "opened_at": "2026-09-21T14:19:20.000Z",
            "until": "2026-09-22T14:19:20.000Z",
            "waiting_for": "purchase",
        }
    ],
    "last_fired": {"a_pause": "2026-09-21T14:13:20.000Z", "e_promo": "2026-09-21T14:19:20.000Z"},
}


def test_the_view_is_plain_json(tmp_path: Path) -> None:
    import orjson

    engine, state, made = history(tmp_path)
    view = explain(engine, "c1", state, T0 + 10 * MIN, made)
    assert orjson.loads(orjson.dumps(view)) == view


def test_a_sequence_whose_window_passed_is_shown_closed_and_a_complete_one_not_at_all(tmp_path: Path) -> None:
    engine, state, _ = history(tmp_path)
    later = T0 + 8 * 24 * 60 * MIN  # past b_welcome's 7d
    (welcome,) = [p for p in explain(engine, "c1", state, later)["matches_in_progress"] if p["topology"] == "b_welcome"]
    assert (welcome["progress"], welcome["near_miss"], welcome["open"]) == ("2 of 3", True, False)
    feed(engine, state, ("e8", "first_order", T0 + 7 * MIN, {"shop": "app"}))
    assert [
        p for p in explain(engine, "c1", state, T0 + 8 * MIN)["matches_in_progress"] if p["topology"] == "b_welcome"
    ] == []


@pytest.mark.parametrize("views, shown", [(1, "1 of 3"), (2, "2 of 3"), (3, None), (4, None)])
def test_a_count_is_shown_below_its_threshold_only(tmp_path: Path, views: int, shown: str | None) -> None:
    engine = catalog(tmp_path)
    state = CustomerState()
    feed(engine, state, *((f"v{i}", "page_view", T0 + i * MIN, {}) for i in range(views)))
    found = [
        p for p in explain(engine, "c1", state, T0 + 10 * MIN)["matches_in_progress"] if p["topology"] == "c_browse"
    ]
    assert [p["progress"] for p in found] == ([shown] if shown else [])
    assert [p["near_miss"] for p in found] == ([shown == "2 of 3"] if shown else [])


def test_a_count_s_events_out_of_its_window_no_longer_count(tmp_path: Path) -> None:
    engine = catalog(tmp_path)
    state = CustomerState()
    feed(engine, state, ("v1", "page_view", T0, {}), ("v2", "page_view", T0 + 30 * MIN, {}))
    (browse,) = explain(engine, "c1", state, T0 + 70 * MIN)["matches_in_progress"]
    assert browse["progress"] == "1 of 3" and [e["event_id"] for e in browse["done"]] == ["v2"]


def test_an_unless_event_spoils_the_sequence(tmp_path: Path) -> None:
    CATALOG_UNLESS = {
        "policies.yaml": CATALOG["policies.yaml"],
        "u.yaml": """
        topology: u
        version: 1
        when:
          sequence: [{event: a}, {event: b}, {event: c}]
          unless: {event: stop}
        then:
          - engage: {channel: email, action: x}
        """,
    }
    for name, text in CATALOG_UNLESS.items():
        (tmp_path / name).write_text("\n".join(line[8:] for line in text.splitlines()))
    engine = Engine(load_folder(tmp_path))
    state = CustomerState()
    feed(engine, state, ("a1", "a", T0, {}), ("b1", "b", T0 + MIN, {}), ("s1", "stop", T0 + 2 * MIN, {}))
    (u,) = explain(engine, "c1", state, T0 + 3 * MIN)["matches_in_progress"]
    assert (u["progress"], u["open"], u["spoiled_by"]["event_id"]) == ("2 of 3", False, "s1")
    assert u["missing"] == [{"step": 3, "event": "c"}]


def made(
    status: Status, cause: str | None, *, kind: Kind = Kind.ENGAGE, did: str = "d1", topology: str = "t"
) -> Decision:
    return Decision(
        decision_id=did,
        customer_id="c1",
        kind=kind,
        channel="email",
        action="promo",
        category=None,
        topology=topology,
        topology_version=1,
        effective_at=T0,
        expires_at=None,
        not_before=None,
        evidence=("e1",),
        reason="t v1 matched login: promo on email.",
        status=status,
        cause=cause,
    )


RIVAL = made(Status.EMITTED, None, did="w1", topology="winner")
GONE = replace(made(Status.EMITTED, None, kind=Kind.SUPPRESS, did="s-gone", topology="old_pause"), category="phone")


@pytest.mark.parametrize(
    "d, said",
    [
        (made(Status.EMITTED, None), ""),
        (made(Status.REACHED, Arm.TREATED, kind=Kind.GOAL), ""),
        (made(Status.BLOCKED, "suppressed_by s1"),
         "Blocked by a_pause's suppression of any marketing on email, in force until 2026-09-28T14:13:20.000Z "
         "(A complaint pauses every e-mail for a week)."),
        # Pruned from state but still among the recent decisions: named from its SUPPRESS decision.
        (made(Status.BLOCKED, "suppressed_by s-gone"),
         "Blocked by old_pause's suppression of phone marketing on email (t v1 matched login: promo on email)."),
        (made(Status.BLOCKED, "suppressed_by nowhere"), "Blocked by a suppression no longer kept (nowhere)."),
        (made(Status.BLOCKED, "cap email max 1 per 7d"),
         "Blocked by a frequency cap of the policies: at most 1 engagements on email per 7d."),
        (made(Status.BLOCKED, "cap * max 6 per 7d"),
         "Blocked by a frequency cap of the policies: at most 6 engagements on all channels together per 7d."),
        (made(Status.OUTRANKED, "outranked_by w1"), "Outranked by winner's promo on email, of higher priority."),
        (made(Status.OUTRANKED, "outranked_by w9"), "Outranked by an engagement of higher priority on email (w9)."),
        (made(Status.SKIPPED, "template {cart.category}"),
         "Skipped: the template {cart.category} could not be filled from the matched events."),
        (made(Status.HELD_OUT, Arm.HOLDOUT_GLOBAL),
         "Held out, never sent: the customer is in the global control group."),
        (made(Status.HELD_OUT, Arm.HOLDOUT_TOPOLOGY),
         "Held out, never sent: the customer is in this topology's control group."),
        (made(Status.SHADOW, Arm.SHADOW), "Shadow, never sent: the topology runs in shadow mode."),
    ],
)  # fmt: skip
def test_why_names_what_stopped_a_decision(tmp_path: Path, d: Decision, said: str) -> None:
    engine = catalog(tmp_path)
    state = CustomerState(suppressions=[Suppression("a_pause", "email", "*", T0, T0 + 7 * 24 * 60 * MIN, "s1")])
    topologies = {t.name: t for t in engine.catalog.topologies}
    by_id = {x.decision_id: x for x in (RIVAL, GONE)}
    assert why(d, state, topologies, by_id) == said


def test_a_blocked_decision_s_reason_in_the_view_says_it_was_blocked(tmp_path: Path) -> None:
    engine, state, made_ = history(tmp_path)
    (blocked,) = [
        d for d in explain(engine, "c1", state, T0 + 10 * MIN, made_)["recent_decisions"] if d["status"] == "blocked"
    ]
    assert blocked["reason"].startswith("e_promo v1 matched login: promo on email. Blocked by a_pause's suppression")
