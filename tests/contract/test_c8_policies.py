"""Contract 8, policies: "Policies change at T too: caps count engagements emitted before T; a new holdout
salt or percentage decides the arms of matches fired from then on, and what was decided before keeps its
status and arm." And "A change of lateness never moves the watermark back."
"""

from __future__ import annotations

from .helpers import customers, engage, ev, iso, on, pick, replay, status_of, topo

T = "+1h"


def test_8_caps_count_engagements_emitted_before_t(topo_dir):
    """8: "caps count engagements emitted before T": a cap that takes force at T is already full."""
    first = topo_dir(on("t", "go", [engage("sms")]))
    capped = topo_dir(
        on("t", "go", [engage("sms")]), policies={"frequency_caps": [{"channel": "sms", "max": 2, "per": "1d"}]}
    )
    events = [ev("g1", "c1", "go", "+0"), ev("g2", "c1", "go", "+10m"), ev("g3", "c1", "go", "+2h")]
    res = replay(first, events, switches=[(T, capped)])
    assert [(d["evidence"], d["status"]) for d in pick(res.audit, kind="ENGAGE")] == [
        (["g1"], "emitted"),
        (["g2"], "emitted"),
        (["g3"], "blocked"),
    ]
    assert pick(res.audit, kind="ENGAGE")[-1]["cause"] == "cap sms max 2 per 1d"


def test_8_a_cap_removed_at_t_no_longer_blocks(topo_dir):
    """8: policies change at T: a cap the new policies lack holds nothing back."""
    capped = topo_dir(
        on("t", "go", [engage("sms")]), policies={"frequency_caps": [{"channel": "sms", "max": 1, "per": "1d"}]}
    )
    free = topo_dir(on("t", "go", [engage("sms")]))
    events = [ev("g1", "c1", "go", "+0"), ev("g2", "c1", "go", "+20m"), ev("g3", "c1", "go", "+2h")]
    res = replay(capped, events, switches=[(T, free)])
    assert [d["status"] for d in pick(res.audit, kind="ENGAGE")] == ["emitted", "blocked", "emitted"]


def test_8_a_new_salt_decides_the_arms_of_matches_fired_from_t_and_earlier_ones_keep_theirs(topo_dir):
    """8: "a new holdout salt ... decides the arms of matches fired from then on, and what was decided
    before keeps its status and arm": a customer in the control group under salt `a` but not `b`."""
    h = 5000
    outside_b = set(customers("b", h, False, 400))
    cid = next(c for c in customers("a", h, True, 200) if c in outside_b)
    old = topo_dir(on("t", "go", [engage("sms")]), policies={"holdout": {"percent": "50%", "salt": "a"}})
    new = topo_dir(on("t", "go", [engage("sms")]), policies={"holdout": {"percent": "50%", "salt": "b"}})
    events = [ev("g1", cid, "go", "+0"), ev("g2", cid, "go", "+2h")]
    res = replay(old, events, switches=[(T, new)])
    assert [(d["evidence"], d["status"], d["cause"]) for d in res.audit] == [
        (["g1"], "held_out", "holdout_global"),
        (["g2"], "emitted", None),
    ]


def test_8_a_new_percentage_decides_the_arms_from_t(topo_dir):
    """8: "a new holdout ... percentage decides the arms of matches fired from then on"."""
    old = topo_dir(on("t", "go", [engage("sms")]))
    new = topo_dir(on("t", "go", [engage("sms")]), policies={"holdout": {"percent": "50%"}})
    (cid,) = customers("tactful", 5000, True)
    res = replay(old, [ev("g1", cid, "go", "+0"), ev("g2", cid, "go", "+2h")], switches=[(T, new)])
    assert status_of(res.audit, "evidence") == [
        ("t", "ENGAGE", "sms", "emitted", "", ["g1"]),
        ("t", "ENGAGE", "sms", "held_out", "holdout_global", ["g2"]),
    ]


def test_8_a_longer_lateness_never_moves_the_watermark_back(topo_dir):
    """8: "A change of lateness never moves the watermark back": lateness 10m, then 1h. The event at
    +1h10m moves the watermark to +1h = T; after the change, +1h10m less 1h would be +10m, but the
    watermark stays at +1h: an event at +30m is late, one at +1h is not."""
    first = topo_dir(on("t", "go", [engage("sms")]))
    lax = topo_dir(on("t", "go", [engage("sms")]), policies={"lateness": "1h"})
    events = [ev("z", "c9", "x", "+1h10m"), ev("g1", "c1", "go", "+30m"), ev("g2", "c1", "go", "+1h")]
    res = replay(first, events, switches=[(T, lax)])
    assert res.rejected == [(2, "late")]
    assert [d["evidence"] for d in res.decisions] == [["g2"]]
    # Later the longer lateness holds: stream time +3h, watermark +2h; +2h15m is on time.
    later = [*events, ev("z2", "c9", "x", "+3h"), ev("g3", "c1", "go", "+2h15m"), ev("g4", "c1", "go", "+1h50m")]
    res2 = replay(first, later, switches=[(T, lax)])
    assert res2.rejected == [(2, "late"), (6, "late")]


def test_8_a_shorter_lateness_moves_the_watermark_on_and_fires_what_it_reaches(topo_dir):
    """8: with a shorter lateness after T, the watermark is stream time less the new lateness at once:
    a deadline between the two fires in the same move, under the new catalog."""
    idle = topo(
        "idle", {"absence": {"after": {"event": "cart"}, "missing": {"event": "buy"}, "for": "1h"}}, [engage("sms")]
    )
    first = topo_dir(idle, policies={"lateness": "1h"})
    tight = topo_dir(idle, policies={"lateness": "1m"})
    events = [ev("k1", "c1", "cart", "+0"), ev("z", "c9", "x", "+2h"), ev("b1", "c1", "buy", "+1h30m")]
    # Without the change: watermark +1h at z, the deadline +1h fires.
    assert [d["effective_at"] for d in replay(first, events).decisions] == [iso("+1h")]
    # The change at +30m: the watermark is +1h59m after z; b1 at +1h30m is late.
    res = replay(first, events, switches=[("+30m", tight)])
    assert res.rejected == [(3, "late")]
    assert [d["effective_at"] for d in res.decisions] == [iso("+1h")]
