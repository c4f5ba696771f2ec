"""``tactful diff``: both catalogs over the same events, decisions matched by meaning.

Two small catalogs over crafted events: a changed window, an added and a
removed topology, a version bump alone, a status change; the exact table of a
tiny case, the ``--out`` JSON Lines and the ``--json`` shape, exit codes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from streams import diff
from streams.cli import EXIT_DIFFERENT, main
from streams.decisions import Decision, Kind, Status
from streams.topology import load_folder

HOUR = 3_600_000
T0 = 1_777_629_600_000  # 2026-05-01T10:00:00Z

NUDGE = """\
topology: nudge
version: {version}
{mode}when:
  absence:
    after: {{as: bought, event: purchase}}
    missing: {{event: activation_succeeded}}
    for: {window}
then:
  - engage: {{channel: sms, action: how_to}}
"""
PAUSE = """\
topology: pause
version: {version}
when:
  sequence:
    - {{as: c, event: complaint}}
then:
  - suppress: {{channels: [email], category: "*", for: 7d}}
"""
GONE = """\
topology: gone
version: 1
when:
  sequence:
    - {as: f, event: login_failed}
then:
  - engage: {channel: push, action: help}
"""
ADDED = """\
topology: added
version: 1
when:
  sequence:
    - {as: b, event: browse}
then:
  - engage: {channel: email, action: offer}
"""


def catalog(root: Path, *, nudge_version: int = 1, window: str = "24h", mode: str = "", pause_version: int = 1,
            gone: bool = True, added: bool = False) -> Path:  # fmt: skip
    root.mkdir()
    (root / "nudge.yaml").write_text(NUDGE.format(version=nudge_version, window=window, mode=mode))
    (root / "pause.yaml").write_text(PAUSE.format(version=pause_version))
    if gone:
        (root / "gone.yaml").write_text(GONE)
    if added:
        (root / "added.yaml").write_text(ADDED)
    return root


def event(n: int, customer: str, type_: str, hours: float) -> dict[str, Any]:
    return {"event_id": f"e{n}", "customer_id": customer, "type": type_, "occurred_at": T0 + int(hours * HOUR)}


EVENTS = [
    event(1, "c1", "purchase", 0),  # nudge fires at +24h (base) or +12h (candidate)
    event(2, "c2", "complaint", 0),  # pause: the same in both, whatever the version
    event(3, "c3", "login_failed", 0),  # gone: base only
    event(4, "c2", "browse", 1),  # added: blocked by pause's suppression
    event(5, "c4", "browse", 1),  # added: emitted
    event(6, "c9", "tick", 30),  # moves the watermark past every deadline
]


def write_events(path: Path, events: list[dict[str, Any]] = EVENTS) -> Path:
    path.write_text("".join(json.dumps(e) + "\n" for e in events))
    return path


def run(base: Path, candidate: Path, events: list[dict[str, Any]] = EVENTS) -> diff.DiffResult:
    return diff.run(load_folder(base), load_folder(candidate), ((0, e) for e in events))


def counts(result: diff.DiffResult) -> dict[tuple[str, str, str], dict[str, int]]:
    return {g: {c: n for c, n in sorted(cs.items()) if n} for g, cs in result.groups.items()}


def test_a_version_bump_alone_is_no_difference(tmp_path: Path) -> None:
    """Not even a cause naming the blocking suppression by its id, which covers the version."""
    base = catalog(tmp_path / "base", added=True)
    bumped = catalog(tmp_path / "bumped", nudge_version=2, pause_version=7, added=True)
    result = run(base, bumped)
    assert result.different == 0
    assert result.differences == []
    assert counts(result) == {
        ("nudge", "sms", "ENGAGE"): {"same": 1},
        ("pause", "email", "SUPPRESS"): {"same": 1},
        ("gone", "push", "ENGAGE"): {"same": 1},
        ("added", "email", "ENGAGE"): {"same": 2},
    }
    assert result.base.decisions == result.candidate.decisions == {"emitted": 4, "blocked": 1}


GOAL = """\
topology: shout
version: 1
{holdout}goal: {{event: buy, within: 1d}}
when:
  sequence:
    - {{as: g, event: go}}
then:
  - engage: {{channel: push, action: hello}}
"""


def test_a_goal_in_another_arm_is_changed(tmp_path: Path) -> None:
    """A GOAL record's cause is the match's arm: the same goal reached in a control group is a change."""
    folders = []
    for name, holdout in (("base", ""), ("cand", "holdout: 100%\n")):
        folder = tmp_path / name
        folder.mkdir()
        (folder / "shout.yaml").write_text(GOAL.format(holdout=holdout))
        folders.append(folder)
    events = [event(1, "c1", "go", 0), event(2, "c1", "buy", 1)]
    result = run(*folders, events=events)
    assert [(d.what, d.decision.kind, d.fields) for d in result.differences] == [
        ("changed", "ENGAGE", ["status", "cause"]),
        ("changed", "GOAL", ["cause"]),
    ]
    goal = result.differences[1]
    assert goal.base is not None and goal.candidate is not None
    assert (goal.base.status, goal.base.cause, goal.candidate.cause) == ("reached", "treated", "holdout_topology")


def test_a_changed_window_added_and_removed_topologies(tmp_path: Path) -> None:
    base = catalog(tmp_path / "base")
    candidate = catalog(tmp_path / "cand", nudge_version=2, window="12h", gone=False, added=True)
    result = run(base, candidate)
    assert counts(result) == {
        ("nudge", "sms", "ENGAGE"): {"base_only": 1, "candidate_only": 1},
        ("pause", "email", "SUPPRESS"): {"same": 1},
        ("gone", "push", "ENGAGE"): {"base_only": 1},
        ("added", "email", "ENGAGE"): {"candidate_only": 2},
    }
    got = [(d.what, d.decision.topology, d.decision.customer_id, d.decision.effective_at) for d in result.differences]
    assert got == [
        ("base_only", "gone", "c3", T0),
        ("candidate_only", "added", "c2", T0 + HOUR),
        ("candidate_only", "added", "c4", T0 + HOUR),
        ("candidate_only", "nudge", "c1", T0 + 12 * HOUR),
        ("base_only", "nudge", "c1", T0 + 24 * HOUR),
    ]
    blocked = result.differences[1].decision
    assert blocked.status == "blocked"
    assert (blocked.cause or "").startswith("suppressed_by ")
    assert result.base.decisions == {"emitted": 3}
    assert result.candidate.decisions == {"emitted": 3, "blocked": 1}


@pytest.mark.parametrize(
    ("mode", "status"),
    [("mode: shadow\n", "shadow"), ("holdout: 100%\n", "held_out")],
)
def test_the_same_decision_in_another_status_is_changed(tmp_path: Path, mode: str, status: str) -> None:
    base = catalog(tmp_path / "base")
    candidate = catalog(tmp_path / "cand", nudge_version=2, mode=mode)
    result = run(base, candidate)
    (change,) = result.differences
    assert change.what == "changed"
    assert change.fields == ["status", "cause"]
    assert change.base is not None and change.candidate is not None
    assert (change.base.status, change.candidate.status) == ("emitted", status)
    assert (change.base.topology_version, change.candidate.topology_version) == (1, 2)
    assert counts(result)[("nudge", "sms", "ENGAGE")] == {"changed": 1}


def test_a_later_watermark_alone_is_seen_per_lane(tmp_path: Path) -> None:
    """Each lane (a topic's partition) has its own watermark; all move to the largest time at the end."""
    base = catalog(tmp_path / "base")
    candidate = catalog(tmp_path / "cand", window="12h")
    # c1's purchase in lane 1, the far event in lane 0 first: in one lane the purchase would be late.
    lanes = [(0, EVENTS[5]), (1, EVENTS[0])]
    result = diff.run(load_folder(base), load_folder(candidate), iter(lanes))
    assert (result.base.late, result.candidate.late) == (0, 0)
    assert counts(result) == {("nudge", "sms", "ENGAGE"): {"base_only": 1, "candidate_only": 1}}
    one_lane = diff.run(load_folder(base), load_folder(candidate), ((0, r) for _, r in lanes))
    assert (one_lane.base.late, one_lane.candidate.late, one_lane.different) == (1, 1, 0)


def test_invalid_events_count_once(tmp_path: Path) -> None:
    base = catalog(tmp_path / "base")
    result = run(base, base, [*EVENTS, {"event_id": "x"}])
    assert (result.events, dict(result.invalid)) == (7, {"invalid_customer_id": 1})


EXPECTED_TABLE = """\
3 decisions from {base} (base), 4 from {cand} (candidate); 6 events (0 invalid)
topology  channel  kind    base only  candidate only  changed  same
added     email    ENGAGE          0               2        0     0
gone      push     ENGAGE          1               0        0     0
nudge     sms      ENGAGE          1               1        0     0
total                              2               3        0     1
(and 1 row alike: --all shows them)

added email ENGAGE: candidate only (2), e.g.
  c2 at 2026-05-01T11:00:00.000Z: blocked (suppressed_by {blocker}); evidence e4
  c4 at 2026-05-01T11:00:00.000Z: emitted; evidence e5

gone push ENGAGE: base only (1), e.g.
  c3 at 2026-05-01T10:00:00.000Z: emitted; evidence e3

nudge sms ENGAGE: base only (1), e.g.
  c1 at 2026-05-02T10:00:00.000Z: emitted; evidence e1

nudge sms ENGAGE: candidate only (1), e.g.
  c1 at 2026-05-01T22:00:00.000Z: emitted; evidence e1
"""


def cli(*args: str) -> Any:
    return CliRunner().invoke(main, ["diff", "--no-progress", *args])


def test_the_table_of_a_tiny_case(tmp_path: Path) -> None:
    base = catalog(tmp_path / "base")
    cand = catalog(tmp_path / "cand", nudge_version=2, window="12h", gone=False, added=True)
    events = write_events(tmp_path / "events.jsonl")
    result = cli("--base", str(base), "--candidate", str(cand), "--events", str(events))
    assert result.exit_code == 0, result.output
    blocker = run(base, cand).differences[1].decision.cause
    assert blocker is not None
    assert result.stdout == EXPECTED_TABLE.format(base=base, cand=cand, blocker=blocker.split()[1])


def test_all_shows_the_rows_alike_too(tmp_path: Path) -> None:
    base = catalog(tmp_path / "base")
    cand = catalog(tmp_path / "cand", pause_version=2)
    events = write_events(tmp_path / "events.jsonl")
    result = cli("--base", str(base), "--candidate", str(cand), "--events", str(events), "--all")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[1:] == [
        "topology  channel  kind      base only  candidate only  changed  same",
        "gone      push     ENGAGE            0               0        0     1",
        "nudge     sms      ENGAGE            0               0        0     1",
        "pause     email    SUPPRESS          0               0        0     1",
        "total                                0               0        0     3",
        "no difference",
    ]


def test_out_writes_every_difference_as_json_lines(tmp_path: Path) -> None:
    base = catalog(tmp_path / "base")
    cand = catalog(tmp_path / "cand", nudge_version=2, mode="mode: shadow\n", gone=False)
    events = write_events(tmp_path / "events.jsonl")
    out = tmp_path / "diff.jsonl"
    result = cli("--base", str(base), "--candidate", str(cand), "--events", str(events), "--out", str(out))
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(x["difference"], x["topology"]) for x in lines] == [("base_only", "gone"), ("changed", "nudge")]
    removed, changed = lines
    assert set(removed) == {
        "difference", "customer_id", "topology", "kind", "channel", "category", "action",
        "effective_at", "evidence", "fields", "base", "candidate",
    }  # fmt: skip
    assert removed["candidate"] is None and removed["fields"] == []
    assert removed["base"]["status"] == "emitted" and removed["base"]["topology_version"] == 1
    assert changed["fields"] == ["status", "cause"]
    assert changed["effective_at"] == "2026-05-02T10:00:00.000Z"
    assert (changed["base"]["status"], changed["candidate"]["status"]) == ("emitted", "shadow")
    assert (changed["base"]["topology_version"], changed["candidate"]["topology_version"]) == (1, 2)
    assert changed["evidence"] == ["e1"] == changed["base"]["evidence"]


def test_json_for_machines(tmp_path: Path) -> None:
    base = catalog(tmp_path / "base")
    cand = catalog(tmp_path / "cand", gone=False)
    events = write_events(tmp_path / "events.jsonl")
    result = cli("--base", str(base), "--candidate", str(cand), "--events", str(events), "--json", "--samples", "1")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert set(data) == {"events", "invalid", "base", "candidate", "totals", "different", "groups"}
    assert data["totals"] == {"base_only": 1, "candidate_only": 0, "changed": 0, "same": 2}
    assert data["different"] == 1
    assert data["base"] == {
        "topologies": str(base),
        "decisions": {"emitted": 3},
        "late": 0,
        "duplicates": 0,
        "customers": 3,  # with state at the end: c4 only browsed, which the base does not read
    }
    gone = next(g for g in data["groups"] if g["topology"] == "gone")
    assert {k: v for k, v in gone.items() if k != "samples"} == {
        "topology": "gone", "channel": "push", "kind": "ENGAGE",
        "base_only": 1, "candidate_only": 0, "changed": 0, "same": 0,
    }  # fmt: skip
    assert [s["customer_id"] for s in gone["samples"]["base_only"]] == ["c3"]


@pytest.mark.parametrize(
    ("fail", "different", "code"), [(False, True, 0), (True, True, EXIT_DIFFERENT), (True, False, 0)]
)
def test_fail_on_difference(tmp_path: Path, fail: bool, different: bool, code: int) -> None:
    base = catalog(tmp_path / "base")
    cand = catalog(tmp_path / "cand", gone=not different, pause_version=3)
    events = write_events(tmp_path / "events.jsonl")
    args = ["--base", str(base), "--candidate", str(cand), "--events", str(events)]
    result = cli(*args, *(["--fail-on-difference"] if fail else []))
    assert result.exit_code == code, result.output
    assert ("no difference" in result.stdout) == (not different)


def test_an_invalid_catalog_exits_2(tmp_path: Path) -> None:
    base = catalog(tmp_path / "base")
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "x.yaml").write_text("topology: x\nversion: one\n")
    events = write_events(tmp_path / "events.jsonl")
    result = cli("--base", str(base), "--candidate", str(bad), "--events", str(events))
    assert result.exit_code == 2
    assert "problem(s) in" in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "give exactly one of --events FILE and --from-topic"),
        (["--events", "x.jsonl", "--since", "0"], "--since and --until go with --from-topic"),
    ],
)
def test_usage_errors_exit_2(tmp_path: Path, args: list[str], message: str) -> None:
    base = catalog(tmp_path / "base")
    result = cli("--base", str(base), "--candidate", str(base), *args)
    assert result.exit_code == 2
    assert message in result.stderr


def test_an_unreadable_events_file_exits_1(tmp_path: Path) -> None:
    base = catalog(tmp_path / "base")
    result = cli("--base", str(base), "--candidate", str(base), "--events", str(tmp_path / "missing.jsonl"))
    assert result.exit_code == 1
    assert "cannot read" in result.stderr


def release(status: str, cause: str | None, version: int = 1) -> Decision:
    return Decision(
        decision_id=f"{status}{version}",
        customer_id="c1",
        kind=Kind.RELEASE,
        channel="email",
        action=None,
        category="*",
        topology="pause",
        topology_version=version,
        effective_at=T0,
        expires_at=None,
        not_before=None,
        evidence=("e9",),
        reason="released",
        status=Status(status),
        cause=cause,
    )


def test_decisions_sharing_a_key_pair_with_the_one_alike() -> None:
    """One event's RELEASEs share a key and differ by status and cause (contract 7.3): whatever
    order they come in, each pairs with its like, and what is left is one side's only."""
    matcher = diff._Matcher()
    held, emitted = release("held_out", "holdout_global"), release("emitted", None)
    matcher.add(0, [held, emitted, release("shadow", "shadow")])
    matcher.add(1, [release("emitted", None, 2), release("held_out", "holdout_global", 2)])
    (left,) = matcher.differences()
    assert (left.what, left.decision.status) == ("base_only", "shadow")
    assert matcher.groups == {("pause", "email", "RELEASE"): {"same": 2, "base_only": 1}}
