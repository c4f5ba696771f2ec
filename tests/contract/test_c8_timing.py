"""Contract 8, when a change applies: "when the watermark moves from w0 to w1 with w0 < T <= w1 (before the
first event there is no watermark: the first event moves it from none to its own time minus lateness),
then, in this order: 1. the deadlines before T that are due fire, under the old catalog; 2. the change is
applied ...; 3. the deadlines from T on that are due fire, and the event that moved the watermark is
evaluated, under the new catalog. Changes are applied in time order, equal times in the order given;
several crossed by one move are applied in turn." And `replay --switch`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from .helpers import E, brief, engage, ev, iso, on, replay, topo


def idle(channel: str, version: int, for_: str = "1h") -> dict[str, Any]:
    when = {"absence": {"after": {"event": "cart"}, "missing": {"event": "buy"}, "for": for_}}
    return topo("idle", when, [engage(channel)], version=version)


def rows(res: Any) -> list[tuple[Any, ...]]:
    return brief(res.decisions, "topology_version")


def test_8_deadlines_before_t_fire_under_the_old_catalog_and_from_t_under_the_new(topo_dir):
    """8, 1 and 3: one move crosses T = +1h30m and two deadlines: +1h (before T) fires under v1, +2h
    (after T) under v2; a deadline exactly at T is "from T on"."""
    v1, v2 = topo_dir(idle("sms", 1)), topo_dir(idle("email", 2))
    events = [
        ev("k1", "c1", "cart", "+0"),
        ev("k3", "c3", "cart", "+30m"),  # its deadline +1h30m = T
        ev("k2", "c2", "cart", "+1h"),
        ev("z", "c9", "x", "+3h"),  # the one move: watermark -50m -> +2h50m
    ]
    res = replay(v1, events, switches=[("+1h30m", v2)])
    assert rows(res) == [
        (*E("sms", "+1h", ["k1"]), 1),
        (*E("email", "+1h30m", ["k3"]), 2),
        (*E("email", "+2h", ["k2"]), 2),
    ]


def test_8_the_event_that_moves_the_watermark_is_evaluated_under_the_new_catalog(topo_dir):
    """8, 3: "the event that moved the watermark is evaluated, under the new catalog"; events before it
    (with the watermark still before T, even with times after T) under the old one."""
    v1 = topo_dir(on("t", "go", [engage("sms")]))
    v2 = topo_dir(on("t", "go", [engage("email")], version=2))
    events = [
        ev("g1", "c1", "go", "+1h5m"),  # time after T, watermark +55m: old catalog
        ev("g2", "c1", "go", "+1h10m"),  # watermark +1h = T: new catalog
    ]
    res = replay(v1, events, switches=[("+1h", v2)])
    assert [(d["channel"], d["topology_version"]) for d in res.decisions] == [("sms", 1), ("email", 2)]


def test_8_the_first_event_moves_the_watermark_from_none(topo_dir):
    """8: "the first event moves it from none to its own time minus lateness": a change at or before
    the first event's time less lateness applies before that event is evaluated; one after it, not."""
    v1 = topo_dir(on("t", "go", [engage("sms")]))
    v2 = topo_dir(on("t", "go", [engage("email")], version=2))
    first = [ev("g1", "c1", "go", "+0")]
    assert rows(replay(v1, first, switches=[("-10m", v2)])) == [(*E("email", "+0", ["g1"]), 2)]
    assert rows(replay(v1, first, switches=[("-9m", v2)])) == [(*E("sms", "+0", ["g1"]), 1)]


def test_8_several_changes_crossed_by_one_move_apply_in_turn(topo_dir):
    """8: "several crossed by one move are applied in turn": between two changes the deadlines due fire
    under the catalog between them."""
    v1, v2, v3 = (topo_dir(idle(ch, n)) for n, ch in ((1, "sms"), (2, "email"), (3, "push")))
    events = [
        ev("k1", "c1", "cart", "+0"),  # +1h: before T1
        ev("k2", "c2", "cart", "+1h"),  # +2h: between
        ev("k3", "c3", "cart", "+2h"),  # +3h: after T2
        ev("z", "c9", "x", "+5h"),
    ]
    res = replay(v1, events, switches=[("+1h30m", v2), ("+2h30m", v3)])
    assert rows(res) == [(*E("sms", "+1h", ["k1"]), 1), (*E("email", "+2h", ["k2"]), 2), (*E("push", "+3h", ["k3"]), 3)]
    assert res.summary["catalog_changes"] == 2


def test_8_changes_apply_in_time_order_whatever_the_order_given(topo_dir):
    """8: "Changes are applied in time order"."""
    v1, v2, v3 = (topo_dir(idle(ch, n)) for n, ch in ((1, "sms"), (2, "email"), (3, "push")))
    events = [ev("k2", "c2", "cart", "+1h"), ev("z", "c9", "x", "+5h")]
    res = replay(v1, events, switches=[("+2h30m", v3), ("+1h30m", v2)])
    assert rows(res) == [(*E("email", "+2h", ["k2"]), 2)]


@pytest.mark.parametrize(("order", "version"), [((2, 3), 3), ((3, 2), 2)], ids=["v2-then-v3", "v3-then-v2"])
def test_8_equal_times_apply_in_the_order_given(topo_dir, order, version):
    """8: "equal times in the order given": the last given is in force."""
    folders = {2: topo_dir(idle("email", 2)), 3: topo_dir(idle("push", 3))}
    events = [ev("k1", "c1", "cart", "+0"), ev("z", "c9", "x", "+5h")]
    res = replay(topo_dir(idle("sms", 1)), events, switches=[("+30m", folders[n]) for n in order])
    assert [d["topology_version"] for d in res.decisions] == [version]
    assert res.summary["catalog_changes"] == 2


def test_8_a_change_never_reached_is_never_applied(topo_dir):
    """8: "A change the final watermark never reaches is never applied": no release of the removed
    topology's suppression, and the summary counts no change. The final watermark is --until, by
    default the largest occurred_at (6): here +1h."""
    quiet = on("quiet", "go", [{"suppress": {"channels": ["sms"], "for": "1d"}}])
    events = [ev("g1", "c1", "go", "+0"), ev("z", "c9", "x", "+1h")]
    gone = topo_dir(on("keep", "x", [engage("push")]))
    res = replay(topo_dir(quiet), events, switches=[("+1h1ms", gone)])
    assert [d["kind"] for d in res.audit] == ["SUPPRESS"]
    assert res.summary["catalog_changes"] == 0
    # Reached by the final watermark only: released at T, and z was evaluated under the old catalog.
    final = replay(topo_dir(quiet), events, switches=[("+1h", gone)])
    assert [(d["kind"], d["effective_at"]) for d in final.audit] == [("SUPPRESS", iso("+0")), ("RELEASE", iso("+1h"))]
    # Reached by z itself (watermark +50m): z is evaluated under the new catalog.
    moved = replay(topo_dir(quiet), events, switches=[("+50m", gone)])
    assert [d["kind"] for d in moved.audit] == ["SUPPRESS", "RELEASE", "ENGAGE"]
    assert (
        replay(topo_dir(quiet), events, until=iso("+2h"), switches=[("+1h30m", gone)]).summary["catalog_changes"] == 1
    )


# ------------------------------------------------------------------------- the command line


def _files(tmp_path: Path, topo_dir: Any) -> tuple[Path, Path, Path]:
    v1 = topo_dir(on("t", "go", [engage("sms")]))
    v2 = topo_dir(on("t", "go", [engage("email")], version=2))
    events = tmp_path / "events.jsonl"
    lines = [ev("g1", "c1", "go", "+0"), ev("g2", "c1", "go", "+2h")]
    events.write_text("".join(json.dumps(r) + "\n" for r in lines), encoding="utf-8")
    return v1, v2, events


def _cli(*args: str) -> Any:
    from streams.cli import main

    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_8_cli_switch_time_dir(topo_dir, tmp_path):
    """8: "<cli> replay --topologies DIR [--switch TIME=DIR ...] --events FILE ...": TIME in the forms of
    --until (ISO-8601 or epoch milliseconds)."""
    from .helpers import ms

    v1, v2, events = _files(tmp_path, topo_dir)
    for at in (iso("+1h"), str(ms("+1h"))):
        res = _cli("replay", "--topologies", str(v1), "--events", str(events), "--switch", f"{at}={v2}")
        assert res.exit_code == 0, res.output
        out = [json.loads(line) for line in res.stdout.splitlines()]
        assert [(d["channel"], d["topology_version"]) for d in out] == [("sms", 1), ("email", 2)]


def test_8_cli_an_invalid_later_catalog_exits_2_before_the_first_event(topo_dir, tmp_path):
    """8: "every catalog is loaded before the first event, and an error in any exits with status 2":
    the message names the folder; nothing is written."""
    v1, _, events = _files(tmp_path, topo_dir)
    bad = topo_dir("topology: broken\nversion: 1\n")
    res = _cli("replay", "--topologies", str(v1), "--events", str(events), "--switch", f"{iso('+1h')}={bad}")
    assert res.exit_code == 2
    assert res.stdout == ""
    assert f"in {bad}" in res.stderr.splitlines()[-1]


@pytest.mark.parametrize(
    "value",
    ["no-equals-sign", "=DIR", "yesterday=DIR", "2026-05-01T11:00:00Z=/no/such/folder"],
    ids=["no-equals", "no-time", "bad-time", "missing-folder"],
)
def test_8_cli_a_bad_switch_value_exits_2(topo_dir, tmp_path, value):
    """8 + 6: a --switch that is not TIME=DIR of a folder is a usage error (exit 2) naming the value."""
    v1, v2, events = _files(tmp_path, topo_dir)
    res = _cli("replay", "--topologies", str(v1), "--events", str(events), "--switch", value.replace("DIR", str(v2)))
    assert res.exit_code == 2
    assert "--switch" in res.stderr


def test_8_an_event_moving_the_watermark_is_a_duplicate_under_the_catalog_that_reads_it(topo_dir):
    """8 + 1 (docs/contract-notes.md): the event that moves the watermark across T is judged under the
    new catalog. `a` is read before +1h and from +2h on, not between: a repeat of a1's id arriving
    between, with a time that crosses +2h, is recognised as a duplicate once the catalog reads `a`."""
    reads_a = topo_dir(on("t", "a", [engage("sms")]))
    other = topo_dir(on("t", "b", [engage("sms")]))
    events = [ev("a1", "c1", "a", "+0"), ev("z", "c9", "x", "+1h10m"), ev("a1", "c1", "a", "+2h10m")]
    res = replay(reads_a, events, switches=[("+1h", other), ("+2h", reads_a)])
    assert [d["evidence"] for d in res.decisions] == [["a1"]]
    assert res.summary["duplicates"] == 1
