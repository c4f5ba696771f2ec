"""Fired matches and goals counted by topology and arm, as an audit count gives them."""

from __future__ import annotations

from pathlib import Path

import pytest

from streams.decisions import Arm, Decision, Kind, Status
from streams.live.metrics import fired
from tests.live import test_runtime_arms as arms
from tests.live.test_runtime import NOW, Log, event, records, run


def sample(registry: object, name: str, **labels: str) -> float:
    value = registry.get_sample_value(name, labels)  # type: ignore[attr-defined]
    return 0.0 if value is None else float(value)


def test_matches_and_goals_are_counted_by_topology_and_arm(tmp_path: Path) -> None:
    rt = arms.make(tmp_path, Log())
    run(rt.handle(records(("c1", event("g", "c1", "go", NOW)), ("c1", event("b", "c1", "buy", NOW + 60_000)))))
    reg = rt.metrics.registry
    fired_total = "tactful_matches_fired_total"
    assert sample(reg, fired_total, topology="shadowed", arm="shadow") == 1
    assert sample(reg, fired_total, topology="held", arm="holdout_topology") == 1
    assert sample(reg, fired_total, topology="treated", arm="treated") == 1
    assert sample(reg, fired_total, topology="treated", arm="holdout_topology") == 0
    goals = "tactful_goals_total"
    assert sample(reg, goals, topology="treated", arm="treated", outcome="reached") == 1
    assert sample(reg, goals, topology="treated", arm="treated", outcome="missed") == 0
    # Every label set: no customer id anywhere.
    for metric in reg.collect():  # type: ignore[attr-defined]
        for s in metric.samples:
            assert "c1" not in s.labels.values()


def decision(topology: str, status: Status, cause: str | None, *, kind: Kind = Kind.ENGAGE, ev: str = "e1") -> Decision:
    return Decision(
        decision_id=f"{topology}-{kind}-{status}-{ev}",
        customer_id="c1",
        kind=kind,
        channel=None if kind == Kind.GOAL else "email",
        action=None,
        category=None,
        topology=topology,
        topology_version=1,
        effective_at=NOW,
        expires_at=None,
        not_before=None,
        evidence=(ev,),
        reason="r",
        status=status,
        cause=cause,
    )


@pytest.mark.parametrize(
    "records_, arm, asked",
    [
        # Whatever the order of the match's records, the one that says the arm wins.
        ([decision("t", Status.BLOCKED, "suppressed_by x"), decision("t", Status.HELD_OUT, Arm.HOLDOUT_GLOBAL)],
         Arm.HOLDOUT_GLOBAL, False),
        ([decision("t", Status.HELD_OUT, Arm.HOLDOUT_TOPOLOGY), decision("t", Status.SKIPPED, "template {x}")],
         Arm.HOLDOUT_TOPOLOGY, False),
        ([decision("t", Status.OUTRANKED, "outranked_by y"), decision("t", Status.EMITTED, None)], Arm.TREATED, False),
        ([decision("t", Status.SHADOW, Arm.SHADOW)], Arm.SHADOW, False),
        # Nothing says: the engine's rule is asked.
        ([decision("t", Status.BLOCKED, "cap email max 1 per 1d")], "asked", True),
    ],
)  # fmt: skip
def test_a_match_s_arm_is_what_its_records_say(records_: list[Decision], arm: str, asked: bool) -> None:
    calls: list[tuple[str, str]] = []

    def arm_of(topology: str, customer: str) -> str:
        calls.append((topology, customer))
        return "asked"

    matches, goals = fired(records_, arm_of)
    assert matches == {("t", arm): 1}
    assert not goals
    assert calls == ([("t", "c1")] if asked else [])


def test_releases_are_no_match_and_each_goal_record_is_one_goal() -> None:
    records_ = [
        decision("t", Status.EMITTED, None, kind=Kind.RELEASE, ev="r1"),
        decision("t", Status.EMITTED, None, ev="e1"),
        decision("t", Status.EMITTED, None, kind=Kind.SUPPRESS, ev="e1"),
        decision("t", Status.HELD_OUT, Arm.HOLDOUT_GLOBAL, ev="e2"),
        decision("t", Status.REACHED, Arm.TREATED, kind=Kind.GOAL, ev="e1"),
        decision("t", Status.MISSED, Arm.HOLDOUT_GLOBAL, kind=Kind.GOAL, ev="e2"),
    ]
    matches, goals = fired(records_, lambda t, c: pytest.fail("no match is in doubt"))
    assert matches == {("t", Arm.TREATED): 1, ("t", Arm.HOLDOUT_GLOBAL): 1}
    assert goals == {("t", Arm.TREATED, "reached"): 1, ("t", Arm.HOLDOUT_GLOBAL, "missed"): 1}


BLOCKED_CATALOG = {
    "a_blocker.yaml": """
        topology: a_blocker
        version: 1
        when: {sequence: [{event: go}]}
        then:
          - suppress: {channels: [email], for: 1d}
    """,
    "b_held.yaml": """
        topology: b_held
        version: 1
        holdout: 100%
        goal: {event: buy, within: 1h}
        when: {sequence: [{event: go}]}
        then:
          - engage: {channel: email, action: held_mail}
    """,
}


def test_a_held_out_match_blocked_whole_counts_in_its_arm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(arms, "CATALOG", BLOCKED_CATALOG)
    rt = arms.make(tmp_path, Log())
    out = run(rt.handle(records(("c1", event("g", "c1", "go", NOW)))))
    assert [(d.topology, d.status) for d in out.decisions if d.topology == "b_held"] == [("b_held", "blocked")]
    reg = rt.metrics.registry
    assert sample(reg, "tactful_matches_fired_total", topology="b_held", arm="holdout_topology") == 1
    assert sample(reg, "tactful_matches_fired_total", topology="b_held", arm="treated") == 0
