"""Contract 8 over the golden journeys: invariants that hold for any input.

- A change to the same catalog changes nothing, wherever it falls (it crosses deadlines, out-of-order
  and late events, duplicates): the output is the golden output byte for byte.
- A change the final watermark never reaches changes nothing either.
- A change the live way (added to the schedule while the processor runs, before its watermark reaches
  its time) decides exactly what `replay --switch` decides.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from streams.cli import main
from streams.decisions import Decision
from streams.engine import CatalogSchedule, DictStore, Processor, Step
from streams.replay import read_events, replay_numbered
from streams.topology import load_folder

GOLDEN = Path(__file__).resolve().parents[1] / "golden"
TOPOLOGIES = GOLDEN / "topologies-v1"
SHIPPED = Path(__file__).resolve().parents[2] / "topologies"
JOURNEYS = GOLDEN / "noisy-journeys.jsonl"
LAST = "2026-05-16T06:19:50.704Z"  # the newest occurred_at of the noisy journeys


def _replay(tmp_path: Path, *switches: str, audit: bool = True) -> bytes:
    out = tmp_path / "out.jsonl"
    args = ["replay", "--topologies", str(TOPOLOGIES), "--events", str(JOURNEYS), "--out", str(out), "--no-progress"]
    for s in switches:
        args += ["--switch", s]
    result = CliRunner().invoke(main, [*args, *(["--audit"] if audit else [])])
    assert result.exit_code == 0, result.output
    return out.read_bytes()


@pytest.mark.parametrize(
    "times",
    [
        ["2026-05-04T00:00:00Z"],
        ["2026-05-06T13:17:00Z"],
        ["2026-05-08T00:00:00Z", "2026-05-08T00:00:00Z", "2026-05-12T09:30:00Z"],
        [LAST],
    ],
    ids=["before-the-first-event", "mid-stream", "three-of-them", "at-the-final-watermark"],
)
def test_a_change_to_the_same_catalog_changes_nothing(tmp_path, times):
    same = tmp_path / "same"
    shutil.copytree(TOPOLOGIES, same)
    switched = _replay(tmp_path, *(f"{t}={same}" for t in times))
    assert switched == (GOLDEN / "noisy-audit.jsonl").read_bytes()


def test_a_change_never_reached_changes_nothing(tmp_path):
    gone = tmp_path / "gone"
    gone.mkdir()
    shutil.copy(TOPOLOGIES / "policies.yaml", gone)
    shutil.copy(TOPOLOGIES / "failed_login_guard.yaml", gone)
    assert (
        _replay(tmp_path, f"2026-05-16T06:19:50.705Z={gone}", audit=False)
        == (GOLDEN / "noisy-decisions.jsonl").read_bytes()
    )
    # The control: reached, the same change does change the output.
    assert _replay(tmp_path, f"{LAST}={gone}", audit=False) != (GOLDEN / "noisy-decisions.jsonl").read_bytes()


def _live(first: Any, later: Any, at: int, add_after: int) -> list[Decision]:
    schedule = CatalogSchedule(first)
    proc = Processor(schedule.initial, DictStore(), schedule=schedule)
    take = Step(proc).take
    out: list[Decision] = []
    for i, (_, record) in enumerate(read_events(JOURNEYS)):
        if i == add_after:
            schedule.add(at, later)
        out.extend(take(record)[1])
    assert proc.stream_time is not None
    out.extend(proc.advance_watermark(proc.stream_time))
    return sorted(out, key=Decision.sort_key)


def test_a_change_added_while_running_decides_as_replay_does(tmp_path):
    """The shipped catalog (goals, a service topology) to one without post_purchase_friction and with
    a shorter lateness, told to the processor 500 events in, taking force days later."""
    first = load_folder(SHIPPED)
    later_dir = tmp_path / "later"
    shutil.copytree(SHIPPED, later_dir)
    (later_dir / "post_purchase_friction.yaml").unlink()
    policies = later_dir / "policies.yaml"
    policies.write_text(policies.read_text().replace("lateness: 10m", "lateness: 2m"))
    later = load_folder(later_dir)
    at = 1778500000000  # 2026-05-11T11:46:40Z
    replayed = replay_numbered(first, read_events(JOURNEYS), switches=[(at, later)]).all_decisions
    assert _live(first, later, at, 500) == replayed
    assert any(d.kind == "RELEASE" and not d.evidence for d in replayed)
