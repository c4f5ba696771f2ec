"""The demo's terminal view keeps its shape whatever the decisions hold."""

from __future__ import annotations

import io

from rich.console import Console

from streams.live.demo import Board, _view


def rendered(board: Board) -> list[str]:
    console = Console(width=120, record=True, file=io.StringIO())
    console.print(_view(board, [6066, 6067], 12.0, 30.0))
    return console.export_text().splitlines()


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
