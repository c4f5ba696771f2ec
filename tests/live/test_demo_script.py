"""The demo's story: its two catalogs, when it deploys, its simulated channels, its report."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

import pytest

from streams.decisions import Decision, Kind
from streams.events import validate_event
from streams.live.demo_script import (
    FLIPPED,
    FUNNEL,
    GOAL_WINDOW,
    demo_catalogs,
    simulated_outcomes,
    start_time,
    summary_lines,
    switch_time,
    write_report,
)
from streams.report.inputs import open_file
from streams.timeutil import parse_duration, parse_time
from streams.topology import load_folder
from streams.topology.model import Pattern

REPO = Path(__file__).resolve().parents[2]
TOPOLOGIES = REPO / "topologies"
MINUTE = 60_000


def test_the_demo_catalogs_add_a_control_group_short_goals_and_flip_one_topology(tmp_path: Path) -> None:
    shipped = {p.name: p.read_text() for p in TOPOLOGIES.glob("*.yaml")}
    cats = demo_catalogs(TOPOLOGIES, tmp_path / "catalog")
    assert {p.name: p.read_text() for p in TOPOLOGIES.glob("*.yaml")} == shipped  # the folder is not changed
    before, after, original = load_folder(cats.before), load_folder(cats.after), load_folder(TOPOLOGIES)
    assert cats.flipped == FLIPPED
    for catalog in (before, after):
        assert catalog.policies.holdout == 2000  # 20% in hundredths of a percent
        assert catalog.policies.salt == "demo"
        assert all(t.goal is None or t.goal.within <= parse_duration(GOAL_WINDOW) for t in catalog.topologies)
        assert {t.name for t in catalog.topologies} == {t.name for t in original.topologies}
    by_name = {b.name: (b, a) for b in before.topologies for a in after.topologies if a.name == b.name}
    was, now = by_name.pop(FLIPPED)
    assert was.shadow and not now.shadow and now.version == was.version + 1
    assert all(b == a for b, a in by_name.values())  # nothing else changes at the deploy
    # Edited as text: comments and the policies as written stay.
    assert (cats.before / "policies.yaml").read_text().startswith(shipped["policies.yaml"])
    assert "# the reminder worked if they bought" in (cats.before / f"{FLIPPED}.yaml").read_text()
    assert cats.changes == ("20% global control group", f"goals within {GOAL_WINDOW}", f"{FLIPPED} in shadow")


def test_a_folder_with_its_own_control_group_and_no_topology_to_flip(tmp_path: Path) -> None:
    source = tmp_path / "mine"
    source.mkdir()
    (source / "policies.yaml").write_text('holdout: {percent: 5%, salt: "x"}\n')
    (source / "welcome.yaml").write_text(
        "topology: welcome\nversion: 3\ngoal: {event: purchase, within: 7d}  # flow style\n"
        "when:\n  sequence:\n    - event: signup\nthen:\n  - engage: {channel: email, action: hi}\n"
    )
    cats = demo_catalogs(source, tmp_path / "catalog")
    assert cats.flipped is None
    assert cats.changes == (f"goals within {GOAL_WINDOW}",)
    before, after = load_folder(cats.before), load_folder(cats.after)
    assert before == after
    assert (before.policies.holdout, before.policies.salt) == (500, "x")  # theirs, kept
    (welcome,) = before.topologies
    assert welcome.goal is not None and welcome.goal.within == parse_duration(GOAL_WINDOW)
    assert "# flow style" in (cats.before / "welcome.yaml").read_text()


def test_the_catalogs_are_written_afresh_each_run(tmp_path: Path) -> None:
    out = tmp_path / "catalog"
    demo_catalogs(TOPOLOGIES, out)
    (out / "before" / "stale.yaml").write_text("not: a topology\n")
    demo_catalogs(TOPOLOGIES, out)
    assert not (out / "before" / "stale.yaml").exists()


LATENESS = 10 * MINUTE


@pytest.mark.parametrize(
    ("newest", "first", "feeding_s", "floor", "expected"),
    [
        # Three days of event time fed in 60 s: 72 minutes a second, so T is 8 s of feeding ahead
        # of the watermarks, which trail the feed by `lateness`.
        (parse_time("2026-05-05T12:00:00Z"), parse_time("2026-05-04T00:00:00Z"), 30.0, 0, 8 * 72 * MINUTE),
        # A resumed run: 25 minutes of event time in 90 s; the feed's own position would be out of reach.
        (25 * MINUTE, 0, 90.0, 0, round(25 * MINUTE / 90 * 8)),
        # Slow event time: never less than a minute ahead.
        (10 * MINUTE, 9 * MINUTE, 30.0, 0, MINUTE),
        # Nothing to measure a speed over yet.
        (10 * MINUTE, 10 * MINUTE, 0.0, 0, MINUTE),
    ],
)
def test_the_switch_time_is_ahead_of_the_watermarks_by_a_few_seconds_of_feeding(
    newest: int, first: int, feeding_s: float, floor: int, expected: int
) -> None:
    watermark = newest - LATENESS  # the furthest any partition's can be
    assert switch_time(newest, first, feeding_s, LATENESS, floor=floor) - watermark == expected


def test_the_switch_time_is_never_before_the_newest_version() -> None:
    assert switch_time(10 * MINUTE, 0, 10.0, LATENESS, floor=100 * MINUTE) == 100 * MINUTE


def test_the_first_catalog_is_deployed_again_where_the_feed_starts() -> None:
    start = 60 * MINUTE  # no earlier than the workers' newest stream time: their watermarks are 10 min behind
    assert start_time(start, LATENESS, None) == start - LATENESS + 1
    assert start_time(start, LATENESS, 2 * MINUTE) == start - LATENESS + 1
    assert start_time(start, LATENESS, 70 * MINUTE) == 70 * MINUTE  # versions stay in time order


def engagement(n: int, channel: str = "email") -> Decision:
    return Decision(
        decision_id=f"{n:032x}",
        customer_id=f"c{n}",
        kind=Kind.ENGAGE,
        channel=channel,
        action="cart_reminder",
        category="shoes",
        topology="abandoned_cart_reminder",
        topology_version=2,
        effective_at=0,
        expires_at=None,
        not_before=None,
        evidence=(f"e{n}",),
        reason="test",
    )


GOAL = Pattern("purchase", (("channel", frozenset({"web", "app"})), ("category", frozenset({"shoes"}))))


def test_the_simulated_channel_reports_a_funnel_and_converted_customers_reach_the_goal() -> None:
    stages = Counter[str]()
    at = parse_time("2026-05-05T12:00:00Z")
    for n in range(20_000):
        d = engagement(n)
        events = simulated_outcomes(d, GOAL, at)
        assert events == simulated_outcomes(d, GOAL, at)  # drawn from the decision id: the same every time
        types = [e["type"] for e in events]
        stages.update(types)
        assert [parse_time(str(e["occurred_at"])) for e in events] == [at + 1000 * i for i in range(len(events))]
        for e in events:
            validate_event(e)  # what the workers accept
        outcomes = [t.removeprefix("decision.") for t in types if t.startswith("decision.")]
        assert outcomes == [s for s, _ in FUNNEL][: len([o for o in outcomes if o != "complained"])] + (
            ["complained"] if "complained" in outcomes else []
        )
        assert ("purchase" in types) == ("decision.converted" in types)
        assert not ("decision.clicked" in types and "decision.complained" in types)
        if "purchase" in types:
            goal = validate_event(events[-1])
            assert GOAL.test(goal) and goal.customer_id == d.customer_id
    share = 1.0
    for stage, of_before in FUNNEL:
        share *= of_before
        assert stages[f"decision.{stage}"] / 20_000 == pytest.approx(share, abs=0.015)
    assert 0 < stages["decision.complained"] < stages["decision.delivered"] * 0.1


def test_no_goal_event_for_a_topology_without_a_goal() -> None:
    converted = next(
        d for n in range(1000) if "decision.converted" in str(simulated_outcomes(d := engagement(n), None, 0))
    )
    assert all(e["type"].startswith("decision.") for e in simulated_outcomes(converted, None, 0))


@pytest.fixture
def golden(tmp_path: Path) -> tuple[Path, Path]:
    audit, events = tmp_path / "audit.jsonl", tmp_path / "events.jsonl"
    shutil.copy(REPO / "tests" / "golden" / "shipped-audit.jsonl", audit)
    shutil.copy(REPO / "tests" / "golden" / "shipped-journeys.jsonl", events)
    return audit, events


def test_the_report_step_writes_json_and_the_page_and_sums_up(golden: tuple[Path, Path], tmp_path: Path) -> None:
    audit, events = golden
    files = write_report(open_file(audit), open_file(events), load_folder(TOPOLOGIES), tmp_path / "out")
    assert files.json == tmp_path / "out" / "demo-report.json"
    data = json.loads(files.json.read_bytes())
    assert data["inputs"]["audit_records"] == sum(1 for _ in audit.open())
    page = files.html.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and "tactful demo report" in page
    assert files.lines == tuple(summary_lines(data))
    assert files.lines[0].startswith(f"{data['inputs']['audit_records']:,} audit records")
    with_goal = [t["topology"] for t in data["topologies"] if t["goal"] is not None]
    assert with_goal and [line.split()[0] for line in files.lines[1:]] == with_goal


def test_the_summary_reads_treated_against_control() -> None:
    rate = {"reached": 3, "missed": 1, "open": 0, "rate": 0.75, "interval": [0.3, 0.95]}
    data = {
        "inputs": {"audit_records": 1200, "matches": 40, "touchpoints": 9000},
        "topologies": [
            {
                "topology": "nudge",
                "matches_total": 5,
                "goal": {"arms": {"treated": rate}, "control": None, "uplift": {"verdict": "no control group"}},
            },
            {"topology": "quiet", "matches_total": 2, "goal": {"arms": {}, "control": None, "uplift": None}},
            {"topology": "service", "matches_total": 9, "goal": None},
        ],
    }
    assert summary_lines(data) == [
        "1,200 audit records, 40 fired matches, 9,000 touchpoints",
        "  nudge  goal rate treated 75% (3/4), control -: no control group",
        "  quiet  no goal decided yet (2 matches)",
    ]
