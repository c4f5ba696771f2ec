"""Outranking compares engagements of one instant (docs/contract-notes.md)."""

from __future__ import annotations

from pathlib import Path

from streams.replay import run

TOPO = """
topology: pair
version: 1
when:
  sequence:
    - {event: a}
    - {event: b, within: 1h}
then:
  - engage: {channel: email, action: hello}
"""
RIVAL = """
topology: rival
version: 1
priority: 60
when:
  sequence:
    - {event: b}
then:
  - engage: {channel: email, action: rival}
"""


def ev(eid: str, etype: str, minute: int) -> dict[str, object]:
    return {"event_id": eid, "customer_id": "c", "type": etype, "occurred_at": f"2026-05-04T10:{minute:02d}:00Z"}


def test_matches_completed_at_two_instants_by_one_late_event_do_not_outrank_each_other(tmp_path: Path) -> None:
    (tmp_path / "pair.yaml").write_text(TOPO)
    # b@4 and b@8 arrive first; a@1 arrives last (within lateness) and completes both.
    result = run(tmp_path, [ev("b4", "b", 4), ev("b8", "b", 8), ev("a1", "a", 1)])
    assert [(d["evidence"], d["status"]) for d in result.audit] == [
        (["a1", "b4"], "emitted"),
        (["a1", "b8"], "emitted"),
    ]


def test_engagements_of_one_instant_still_outrank(tmp_path: Path) -> None:
    (tmp_path / "pair.yaml").write_text(TOPO)
    (tmp_path / "rival.yaml").write_text(RIVAL)
    result = run(tmp_path, [ev("a1", "a", 1), ev("b4", "b", 4)])
    assert [(d["topology"], d["status"]) for d in result.audit] == [("pair", "outranked"), ("rival", "emitted")]
