"""The demo's terminal view keeps its shape whatever the decisions hold."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from streams.live.demo import COLUMNS, Board, _columns, _newest_stream_time, _show, _view


def rendered(board: Board, width: int = 120) -> list[str]:
    console = Console(width=width, record=True, file=io.StringIO())
    console.print(_view(board, [6066, 6067], 12.0, 30.0, _columns(width)))
    return console.export_text().splitlines()


@pytest.mark.parametrize("width", [80, 100, 120, 200])
def test_a_narrow_terminal_narrows_what_and_topology_only(width: int) -> None:
    board = Board()
    board.recent.append(("11-29 16:50:23", "c000228", "SUPPRESS", "call_center", "x" * 40, "y" * 40, "emitted"))
    lines = rendered(board, width)
    assert all(len(line) <= width for line in lines)
    row = next(line for line in lines if "c000228" in line)
    for full in ("11-29 16:50:23", "SUPPRESS", "call_center", "emitted"):
        assert full in row
    fitted = dict(_columns(width))
    assert {k: v for k, v in fitted.items() if k not in ("what", "topology")} == {
        k: v for k, v in COLUMNS if k not in ("what", "topology")
    }
    assert ("topology" in fitted) == (width >= 100)


def test_the_table_keeps_its_column_widths_and_height() -> None:
    empty = rendered(Board())
    short = Board(fed=3)
    short.recent.append(("05-04 10:00:00", "c1", "ENGAGE", "sms", "x", "t", "emitted"))
    long = Board(fed=1_234_567)
    for _ in range(20):
        long.recent.append(("05-04 10:00:00", "c" * 128, "SUPPRESS", "call_center", "y" * 80, "z" * 64, "emitted"))
    frames = [empty, rendered(short), rendered(long)]
    tables = [f[f.index(next(line for line in f if "event time" in line)) - 1 :] for f in frames]
    assert len({len(t) for t in tables}) == 1  # the same height
    for rows in zip(*tables, strict=True):
        assert len({len(r) for r in rows}) == 1  # the same width, line by line
        assert len({tuple(i for i, ch in enumerate(r) if ch in "┃│┏┓┡┩└┘┳╇┴") for r in rows}) == 1  # borders stay put
    assert all(len(line) <= 120 for f in frames for line in f)


def test_the_workers_stream_time_is_read_from_their_metrics() -> None:
    text = (
        "# HELP tactful_stream_time_behind_seconds ...\n"
        'tactful_stream_time_behind_seconds{partition="0"} 600.0\n'
        'tactful_stream_time_behind_seconds{partition="1"} 30.5\n'
        'tactful_stream_time_ahead_seconds{partition="0"} 0.0\n'
        'tactful_stream_time_ahead_seconds{partition="1"} 0.0\n'
    )
    assert _newest_stream_time(text, 1_000_000) == 1_000_000 - 30_500
    ahead = text + 'tactful_stream_time_ahead_seconds{partition="2"} 2.0\n'
    assert _newest_stream_time(ahead, 1_000_000) == 1_002_000
    assert _newest_stream_time("# nothing yet\n", 1_000_000) is None


def audit_record(
    kind: str, status: str, topology: str = "abandoned_cart_reminder", version: int = 1
) -> dict[str, object]:
    return {
        "kind": kind,
        "status": status,
        "topology": topology,
        "topology_version": version,
        "customer_id": "c000042",
        "channel": None if kind == "GOAL" else "email",
        "action": None if kind == "GOAL" else "cart_reminder",
        "category": None,
        "cause": "holdout_global" if kind == "GOAL" else None,
        "effective_at": 1_777_852_800_000,
    }


def test_the_view_shows_the_switch_per_worker_and_the_flipped_topologys_decisions_by_version() -> None:
    board = Board(flipped="abandoned_cart_reminder")
    board.catalog = ["[b]catalog[/b] 17ddb9548dec: 20% global control group", "[b]deploy[/b] after/ half-way"]
    for record in (
        audit_record("ENGAGE", "shadow"),
        audit_record("ENGAGE", "shadow"),
        audit_record("ENGAGE", "emitted", version=2),
        audit_record("ENGAGE", "held_out", version=2),
        audit_record("GOAL", "reached", version=2),  # goals are not decisions of the topology
        audit_record("ENGAGE", "emitted", topology="activation_nudge"),
    ):
        _show(board, record)
    board.in_force = {6066: {"1": "sha256:" + "b" * 64, "0": "sha256:" + "a" * 64}, 6067: {}}
    text = "\n".join(rendered(board))
    assert "abandoned_cart_reminder v1: shadow 2 · v2: emitted 1, held_out 1" in text
    assert ":6066 aaaaaaaaaaaa (p0) bbbbbbbbbbbb (p1)   :6067 no partition yet" in text
    assert "catalog 17ddb9548dec" in text
    goal_row = next(line for line in text.splitlines() if "GOAL" in line and "c000042" in line)
    assert "holdout_global" in goal_row and "reached" in goal_row  # a GOAL's arm stands in its "what"
    assert board.decisions == {
        ("ENGAGE", "shadow"): 2,
        ("ENGAGE", "emitted"): 2,
        ("ENGAGE", "held_out"): 1,
        ("GOAL", "reached"): 1,
    }


def test_the_feed_position_is_the_newest_event_time_sent() -> None:
    board = Board()
    for at in (1_000, 5_000, None, 3_000):  # out of order, and a broken record with no time
        board.sent(at)
    assert (board.fed, board.first_sent, board.newest_sent) == (4, 1_000, 5_000)


def test_the_end_says_whether_every_partition_switched() -> None:
    from streams.live.catalog.deploy import DeployResult
    from streams.live.catalog.record import CatalogRecord, Deployed
    from streams.live.demo import _switch_summary

    record = CatalogRecord(files={"policies.yaml": "lateness: 10m\n"}, at=0, deployed=Deployed("u", "h", 0, "t", "f"))
    board = Board()
    board.in_force = {6066: {"0": record.hash, "1": record.hash}, 6067: {"2": record.hash}}
    assert _switch_summary(board, DeployResult(record, True)).startswith("catalog: all 3 partitions switched to")
    board.in_force[6067]["3"] = "sha256:" + "0" * 64
    assert _switch_summary(board, DeployResult(record, True)).startswith("catalog: 1 of 4 partitions still on")
