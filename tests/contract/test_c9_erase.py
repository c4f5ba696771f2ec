"""Contract section 9: forgetting a customer (`tactful.erase`), black-box through replay.

Also the rule of section 7 that a topology naming a `tactful.*` type is a
loading error. Each test's docstring quotes the sentence it covers.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .helpers import E, R, S, brief, engage, ev, ms, on, replay, suppress, topo

ERASE = "tactful.erase"
BIN = Path(sys.executable).parent / "tactful"


def erase(event_id: str, customer: str, at: str | int) -> dict[str, object]:
    return ev(event_id, customer, ERASE, at)


def seq_ab(**kw: object) -> dict[str, object]:
    return topo("ab", {"sequence": [{"event": "a"}, {"event": "b"}]}, [engage("email")], **kw)  # type: ignore[arg-type]


def absence(for_: str = "1h") -> dict[str, object]:
    return topo(
        "cart_left",
        {"absence": {"after": {"event": "cart", "as": "c"}, "missing": {"event": "buy"}, "for": for_}},
        [engage("push", "remind")],
    )


# ------------------------------------------------------------- reserved types


def test_9_erase_is_a_valid_event(topo_dir):
    """9: "An event of the reserved type tactful.erase erases that customer": it is valid, never dead-lettered."""
    res = replay(topo_dir(seq_ab()), [erase("x1", "c1", "+0")])
    assert res.rejected == []
    assert res.summary["invalid"] == 0 and res.summary["erasures"] == 1


@pytest.mark.parametrize("type_", ["tactful.forget", "tactful.erase.all", "tactful.", "tactful.erasex"])
def test_9_any_other_tactful_type_is_invalid_reserved_type(topo_dir, type_):
    """9: "any other tactful.* type is invalid, reason reserved_type"."""
    res = replay(topo_dir(seq_ab()), [ev("e1", "c1", type_, "+0")])
    assert res.rejected == [(1, "reserved_type")]
    assert res.summary["invalid"] == 1 and res.summary["erasures"] == 0


@pytest.mark.parametrize("type_", ["tactful", "tactfulx.erase", "my.tactful.erase"])
def test_9_types_merely_like_tactful_are_ordinary(topo_dir, type_):
    """9: only the `tactful.` prefix is reserved."""
    res = replay(topo_dir(on("t", type_, [engage("email")])), [ev("e1", "c1", type_, "+0")])
    assert res.rejected == [] and len(res.decisions) == 1


def test_9_an_erase_is_validated_like_any_event(topo_dir):
    """9: "An erase is validated like any event": a bad customer_id makes it invalid, and it erases nothing."""
    d = topo_dir(seq_ab())
    bad = {"event_id": "x1", "customer_id": "", "type": ERASE, "occurred_at": "2026-05-01T10:01:00Z"}
    res = replay(d, [ev("a1", "c1", "a", "+0"), bad, ev("b1", "c1", "b", "+2m")])
    assert res.rejected == [(2, "invalid_customer_id")]
    assert brief(res.decisions) == [E("email", "+2m", ["a1", "b1"])]


@pytest.mark.parametrize(
    ("when", "key"),
    [
        ({"sequence": [{"event": ERASE}]}, "when.sequence[0].event"),
        ({"sequence": [{"event": "a"}], "unless": {"event": "tactful.x"}}, "when.unless.event"),
        ({"count": {"event": ERASE, "at_least": 2, "within": "1h"}}, "when.count.event"),
        ({"absence": {"after": {"event": ERASE}, "missing": {"event": "b"}, "for": "1h"}}, "when.absence.after.event"),
        (
            {"absence": {"after": {"event": "a"}, "missing": {"event": ERASE}, "for": "1h"}},
            "when.absence.missing.event",
        ),
    ],
    ids=["step", "unless", "count", "absence-after", "absence-missing"],
)
def test_7_a_topology_naming_a_tactful_type_is_a_loading_error(topo_dir, when, key):
    """7: "A topology that names a tactful.* event type anywhere is a loading error" (file and key named)."""
    from streams.errors import TopologyError
    from streams.topology import load_folder

    d = topo_dir(topo("bad", when, [engage("email")]))
    with pytest.raises(TopologyError) as ei:
        load_folder(d)
    assert [(Path(p.file).name, p.key) for p in ei.value.problems] == [("bad.yaml", key)]


def test_7_release_on_a_tactful_type_is_a_loading_error(topo_dir):
    """7: `release_on` is "anywhere" too."""
    from streams.errors import TopologyError
    from streams.topology import load_folder

    d = topo_dir(on("bad", "a", [suppress(["email"])], release_on={"event": ERASE}))
    with pytest.raises(TopologyError) as ei:
        load_folder(d)
    assert [p.key for p in ei.value.problems] == ["release_on.event"]


# -------------------------------------------------- never late, never duplicate


def test_9_an_erase_is_never_late(topo_dir):
    """9: an erase "is never late": one before the watermark is still applied (the state it deletes included
    events after it)."""
    d = topo_dir(seq_ab())
    recs = [
        ev("a1", "c1", "a", "+30m"),
        ev("p", "c2", "ping", "+1h"),
        erase("x1", "c1", "+0"),
        ev("b1", "c1", "b", "+55m"),
    ]
    res = replay(d, recs)
    assert res.rejected == []
    assert res.summary["erasures"] == 1
    assert res.decisions == []  # a1 went with the erase, though it is later than it


def test_9_an_erase_is_never_a_duplicate(topo_dir):
    """9: an erase is "never ignored as a duplicate": an erase reusing an event's id, and a second erase
    reusing the first's id, are both applied."""
    d = topo_dir(seq_ab())
    recs = [
        ev("same", "c1", "a", "+0"),
        erase("same", "c1", "+1m"),
        ev("a2", "c1", "a", "+2m"),
        erase("same", "c1", "+3m"),
        ev("b1", "c1", "b", "+4m"),
    ]
    res = replay(d, recs)
    assert res.summary["duplicates"] == 0 and res.summary["erasures"] == 2
    assert res.decisions == []


# ---------------------------------------------------------------- stream time


def test_9_an_erase_moves_stream_time(topo_dir):
    """9: "It moves stream time like any event": another customer's deadline fires with --until before it,
    and an event behind the new watermark is late."""
    d = topo_dir(absence("1h"))
    recs = [ev("k2", "c2", "cart", "+0"), erase("x1", "c1", "+2h"), ev("k3", "c3", "cart", "+1h")]
    res = replay(d, recs, until=ms("+0"))
    assert brief(res.decisions) == [E("push", "+1h", ["k2"])]
    assert res.rejected == [(3, "late")]


def test_9_the_deadlines_an_erase_makes_due_fire_first(topo_dir):
    """9: "so the deadlines it makes due fire first": the erased customer's own due deadline fires."""
    d = topo_dir(absence("1h"))
    res = replay(d, [ev("k1", "c1", "cart", "+0"), erase("x1", "c1", "+1h10m")])
    assert brief(res.decisions) == [E("push", "+1h", ["k1"])]


def test_9_deadlines_not_due_at_the_erase_are_deleted(topo_dir):
    """9: "armed deadlines" are deleted: one not yet due never fires, even when --until passes it."""
    d = topo_dir(absence("1h"))
    res = replay(d, [ev("k1", "c1", "cart", "+0"), erase("x1", "c1", "+30m")], until=ms("+5h"))
    assert res.decisions == []


# ------------------------------------------------------- all state deleted


def test_9_stored_events_are_deleted(topo_dir):
    """9: "stored events" are deleted: a sequence begun before the erase cannot end after it."""
    d = topo_dir(seq_ab())
    res = replay(d, [ev("a1", "c1", "a", "+0"), erase("x1", "c1", "+1m"), ev("b1", "c1", "b", "+2m")])
    assert res.decisions == []


def test_9_suppressions_are_deleted_with_no_release(topo_dir):
    """9: "suppressions (with no RELEASE)": the release event finds nothing to lift, an engagement is not blocked."""
    d = topo_dir(
        on("hold", "trouble", [suppress(["email"], "7d")], release_on={"event": "fixed"}, priority=90),
        on("promo", "go", [engage("email", "sale")]),
    )
    recs = [
        ev("t1", "c1", "trouble", "+0"),
        erase("x1", "c1", "+1m"),
        ev("g1", "c1", "go", "+2m"),
        ev("f1", "c1", "fixed", "+3m"),
    ]
    res = replay(d, recs)
    assert brief(res.decisions) == [S("email", "+0", ["t1"]), E("email", "+2m", ["g1"])]
    assert [a["kind"] for a in res.audit] == ["SUPPRESS", "ENGAGE"]  # no RELEASE, not even unsent


def test_9_caps_are_deleted(topo_dir):
    """9: "caps": engagements counted before the erase count no more."""
    d = topo_dir(
        on("promo", "go", [engage("sms", "sale")]),
        policies={"frequency_caps": [{"channel": "sms", "max": 1, "per": "7d"}]},
    )
    res = replay(d, [ev("g1", "c1", "go", "+0"), erase("x1", "c1", "+1m"), ev("g2", "c1", "go", "+2m")])
    assert brief(res.decisions) == [E("sms", "+0", ["g1"]), E("sms", "+2m", ["g2"])]


def test_9_cooldowns_and_fired_memory_are_deleted(topo_dir):
    """9: "cooldowns and the memory of matches fired": the topology fires again inside its cooldown."""
    d = topo_dir(on("promo", "go", [engage("sms", "sale")], cooldown="7d"))
    res = replay(d, [ev("g1", "c1", "go", "+0"), erase("x1", "c1", "+1m"), ev("g2", "c1", "go", "+2m")])
    assert brief(res.decisions) == [E("sms", "+0", ["g1"]), E("sms", "+2m", ["g2"])]


def test_9_ids_seen_are_deleted(topo_dir):
    """9: "and the ids of their events seen so far": an id used before the erase is new after it."""
    d = topo_dir(on("promo", "go", [engage("sms", "sale")]))
    res = replay(d, [ev("g1", "c1", "go", "+0"), erase("x1", "c1", "+1m"), ev("g1", "c1", "go", "+2m")])
    assert res.summary["duplicates"] == 0
    assert brief(res.decisions) == [E("sms", "+0", ["g1"]), E("sms", "+2m", ["g1"])]


def test_9_other_customers_keep_their_state(topo_dir):
    """9: an erase "erases that customer" only."""
    d = topo_dir(seq_ab())
    recs = [ev("a1", "c1", "a", "+0"), ev("a2", "c2", "a", "+0"), erase("x1", "c1", "+1m")]
    res = replay(d, [*recs, ev("b1", "c1", "b", "+2m"), ev("b2", "c2", "b", "+2m")])
    assert [d["customer_id"] for d in res.decisions] == ["c2"]


# --------------------------------------------- no decision, no retraction


def test_9_an_erase_makes_no_decision_and_retracts_none(topo_dir):
    """9: "An erase makes no decision, and decisions already written are not retracted"."""
    d = topo_dir(on("hold", "trouble", [suppress(["email", "sms"], "7d")], release_on={"event": "fixed"}))
    res = replay(d, [ev("t1", "c1", "trouble", "+0"), erase("x1", "c1", "+1m")])
    assert brief(res.decisions) == [S("email", "+0", ["t1"]), S("sms", "+0", ["t1"])]
    assert len(res.audit) == 2


# ------------------------------------------------------------------ tombstone


def test_9_events_at_or_before_the_erase_are_ignored_as_erased(topo_dir):
    """9: "events with occurred_at at or before te are ignored as erased (counted in the summary, never
    evaluated, never dead-lettered)"."""
    d = topo_dir(seq_ab())
    recs = [
        erase("x1", "c1", "+10m"),
        ev("a1", "c1", "a", "+5m"),
        ev("a2", "c1", "a", "+10m"),
        ev("b1", "c1", "b", "+11m"),
    ]
    res = replay(d, recs)
    assert res.rejected == []
    assert res.summary["erased"] == 2
    assert res.decisions == []  # a1, a2 were never stored: b1 completes nothing


def test_9_erased_is_checked_before_lateness(topo_dir):
    """9: "ignored as erased, before any ... lateness check": an erased event behind the watermark is not late."""
    d = topo_dir(seq_ab())
    res = replay(d, [ev("p", "c2", "ping", "+1h"), erase("x1", "c1", "+50m"), ev("a1", "c1", "a", "+0")])
    assert res.rejected == [] and res.summary["late"] == 0 and res.summary["erased"] == 1


def test_9_erased_is_checked_before_duplicates(topo_dir):
    """9: "ignored as erased, before any duplicate ... check": a redelivered pre-erase event is erased."""
    d = topo_dir(seq_ab())
    recs = [ev("a1", "c1", "a", "+0"), erase("x1", "c1", "+1m"), ev("a1", "c1", "a", "+0")]
    res = replay(d, recs)
    assert res.summary["duplicates"] == 0 and res.summary["erased"] == 1


def test_9_later_events_start_from_empty_state(topo_dir):
    """9: "later ones start from empty state": events after te match among themselves."""
    d = topo_dir(seq_ab())
    recs = [ev("a0", "c1", "a", "+0"), erase("x1", "c1", "+1m"), ev("a1", "c1", "a", "+2m"), ev("b1", "c1", "b", "+3m")]
    assert brief(replay(d, recs).decisions) == [E("email", "+3m", ["a1", "b1"])]


def test_9_the_tombstone_goes_at_the_watermark_minus_retention(topo_dir):
    """9: the tombstone stays "while te is at or after the watermark minus retention": after that an old
    event is late (dead-lettered), no longer erased."""
    policies = {"lateness": "10m", "retention": "1h"}
    d = topo_dir(seq_ab(), policies=policies)
    standing = [erase("x1", "c1", "+0"), ev("p", "c2", "ping", "+1h10m"), ev("a1", "c1", "a", "-1m")]
    res = replay(d, standing)  # watermark +1h, minus retention: +0, and te = +0 is at it
    assert res.rejected == [] and res.summary["erased"] == 1
    gone = [erase("x1", "c1", "+0"), ev("p", "c2", "ping", "+1h10m1ms"), ev("a1", "c1", "a", "-1m")]
    res = replay(d, gone)
    assert res.rejected == [(3, "late")] and res.summary["erased"] == 0


# ---------------------------------------------------------------- stale erases


@pytest.mark.parametrize("again", ["+10m", "+5m"], ids=["same-time", "earlier"])
def test_9_an_erase_not_after_the_tombstone_changes_nothing(topo_dir, again):
    """9: "An erase whose te is not after the tombstone's ... changes nothing, so a redelivered erase cannot wipe
    what came after it"."""
    d = topo_dir(seq_ab())
    recs = [
        erase("x1", "c1", "+10m"),
        ev("a1", "c1", "a", "+20m"),
        erase("x1", "c1", again),
        ev("b1", "c1", "b", "+21m"),
    ]
    res = replay(d, recs)
    assert brief(res.decisions) == [E("email", "+21m", ["a1", "b1"])]
    assert (res.summary["erasures"], res.summary["stale_erasures"]) == (1, 1)
    assert res.rejected == []


def test_9_a_later_erase_erases_again(topo_dir):
    """9: an erase after the tombstone's te is applied: what came between goes too."""
    d = topo_dir(seq_ab())
    recs = [
        erase("x1", "c1", "+10m"),
        ev("a1", "c1", "a", "+20m"),
        erase("x2", "c1", "+15m"),
        ev("b1", "c1", "b", "+21m"),
    ]
    res = replay(d, recs)
    assert res.decisions == [] and res.summary["erasures"] == 2


def test_9_an_erase_before_the_watermark_minus_retention_changes_nothing(topo_dir):
    """9: an erase whose te "is before the watermark minus retention, changes nothing" (and is not late)."""
    d = topo_dir(seq_ab(), policies={"lateness": "10m", "retention": "1h"})
    recs = [ev("a1", "c1", "a", "+2h"), erase("x1", "c1", "+0"), ev("b1", "c1", "b", "+2h1m")]
    res = replay(d, recs)
    assert brief(res.decisions) == [E("email", "+2h1m", ["a1", "b1"])]
    assert res.rejected == [] and (res.summary["erasures"], res.summary["stale_erasures"]) == (0, 1)


def test_9_a_release_made_before_the_erase_stays_written(topo_dir):
    """9: decisions written before the erase stay, whatever their kind."""
    d = topo_dir(on("hold", "trouble", [suppress(["email"], "7d")], release_on={"event": "fixed"}))
    res = replay(d, [ev("t1", "c1", "trouble", "+0"), ev("f1", "c1", "fixed", "+1m"), erase("x1", "c1", "+2m")])
    assert brief(res.decisions) == [S("email", "+0", ["t1"]), R("email", "+1m", ["f1"])]


# ------------------------------------------------------------------- command line


def test_6_the_replay_summary_counts_erasures(topo_dir, tmp_path):
    """6 + 9: the summary on standard error counts erases and events ignored as erased."""
    d = topo_dir(seq_ab())
    events = tmp_path / "events.jsonl"
    recs = [ev("a1", "c1", "a", "+0"), erase("x1", "c1", "+1m"), erase("x1", "c1", "+1m"), ev("a1", "c1", "a", "+0")]
    events.write_text("".join(json.dumps(r) + "\n" for r in recs))
    exe = str(BIN) if BIN.exists() else (shutil.which("tactful") or "tactful")
    proc = subprocess.run(
        [exe, "replay", "--topologies", str(d), "--events", str(events)], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    line = next(ln for ln in proc.stderr.splitlines() if ln.startswith("summary:"))
    assert "1 erasures" in line and "1 erasures that changed nothing" in line and "1 ignored as erased" in line
