"""The demo's terminal view keeps its shape whatever the decisions hold."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from streams.live.demo import COLUMNS, Board, _columns, _newest_stream_time, _view


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
