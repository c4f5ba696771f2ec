"""Contract 8, an added topology: "it starts from the state as it is, so it may complete matches with events
stored before T (only what 7.6 stored). A topology removed and added again finds what its name left:
cooldown and the memory of matches already fired."
"""

from __future__ import annotations

from .helpers import E, brief, engage, ev, on, replay, topo

AB = {"sequence": [{"event": "a", "as": "first"}, {"event": "b"}]}
T = "+1h"
AFTER_T = "+1h10m"


def test_8_an_added_topology_completes_a_match_with_events_stored_before_t(topo_dir):
    """8 added: "it may complete matches with events stored before T": `a` was stored because the first
    catalog reads it; the added `ab` completes with it when `b` comes after T."""
    reader = on("reader", "a", [engage("push")])
    first = topo_dir(reader)
    later = topo_dir(reader, topo("ab", AB, [engage("sms")]))
    events = [ev("a1", "c1", "a", "+0"), ev("b1", "c1", "b", "+2h")]
    res = replay(first, events, switches=[(T, later)])
    assert brief(res.decisions, "topology") == [
        (*E("push", "+0", ["a1"]), "reader"),
        (*E("sms", "+2h", ["a1", "b1"]), "ab"),
    ]


def test_8_an_added_topology_does_not_see_events_the_old_catalog_did_not_store(topo_dir):
    """8 added: "(only what 7.6 stored)": an event of a type the catalog in force did not read was not
    stored, so the added topology cannot use it."""
    first = topo_dir(on("other", "x", [engage("push")]))
    later = topo_dir(topo("ab", AB, [engage("sms")]))
    res = replay(first, [ev("a1", "c1", "a", "+0"), ev("b1", "c1", "b", "+2h")], switches=[(T, later)])
    assert res.decisions == []


def test_8_an_added_topology_sees_only_the_attributes_the_old_catalog_kept(topo_dir):
    """8 added + 7.6: "with only the attributes that catalog reads": the added topology's `where` on an
    attribute the first catalog did not keep fails on the stored event; the channel is always kept."""
    first = topo_dir(on("reader", "a", [engage("push")]))
    by_attr = topo("ab", {"sequence": [{"event": "a", "where": {"sku": "x"}}, {"event": "b"}]}, [engage("sms")])
    by_channel = topo(
        "ac", {"sequence": [{"event": "a", "where": {"channel": "web"}}, {"event": "b"}]}, [engage("email")]
    )
    events = [ev("a1", "c1", "a", "+0", "web", sku="x"), ev("b1", "c1", "b", "+2h")]
    res = replay(first, events, switches=[(T, topo_dir(by_attr, by_channel))])
    assert [d["topology"] for d in res.decisions] == ["reader", "ac"]
    # Added from the start, the same `where` holds.
    assert [d["topology"] for d in replay(topo_dir(by_attr), events).decisions] == ["ab"]


def test_8_an_added_absence_arms_only_for_after_events_evaluated_under_it(topo_dir):
    """8 added (docs/contract-notes.md): deadlines are armed when an `after` event is evaluated, so a
    stored `cart` from before T arms nothing; one after T does."""
    reader = on("reader", "cart", [engage("push")])
    idle = topo(
        "idle", {"absence": {"after": {"event": "cart"}, "missing": {"event": "buy"}, "for": "1h"}}, [engage("sms")]
    )
    events = [ev("k1", "c1", "cart", "+0"), ev("k2", "c2", "cart", "+2h"), ev("z", "c9", "x", "+5h")]
    res = replay(topo_dir(reader), events, switches=[(T, topo_dir(reader, idle))])
    assert [(d["topology"], d["evidence"]) for d in res.decisions if d["channel"] == "sms"] == [("idle", ["k2"])]


def test_8_removed_and_added_again_finds_its_cooldown(topo_dir):
    """8: "A topology removed and added again finds what its name left: cooldown"."""
    t = on("t", "go", [engage("sms")], cooldown="1d")
    keep = on("keep", "x", [engage("push")])
    with_t, without_t = topo_dir(t, keep), topo_dir(keep)
    events = [ev("g1", "c1", "go", "+0"), ev("g2", "c1", "go", "+3h")]
    res = replay(with_t, events, switches=[(T, without_t), ("+2h", with_t)])
    assert [d["evidence"] for d in res.decisions] == [["g1"]]
    assert res.summary["matches_held_by_cooldown"] == 1
    assert res.summary["catalog_changes"] == 2
    # Under another name nothing was left: it fires.
    renamed = topo_dir(on("t2", "go", [engage("sms")], cooldown="1d"), keep)
    other = replay(with_t, events, switches=[(T, without_t), ("+2h", renamed)])
    assert [d["evidence"] for d in other.decisions] == [["g1"], ["g2"]]


def test_8_removed_and_added_again_finds_the_memory_of_matches_fired(topo_dir):
    """8: "A topology removed and added again finds what its name left: ... the memory of matches already
    fired": b1 completed a match before the removal; an out-of-order `a` after the re-adding could
    complete it again, and does not."""
    ab = topo("ab", AB, [engage("sms")])
    keep = topo("keep", {"sequence": [{"event": "a"}, {"event": "b"}, {"event": "q"}]}, [engage("push")])  # stores a, b
    events = [
        ev("a1", "c1", "a", "+0"),
        ev("b1", "c1", "b", "+5m"),  # fires ab with [a1, b1]
        ev("z1", "c9", "x", "+12m"),  # watermark +2m: removed at +1m, added again at +2m
        ev("a0", "c1", "a", "+3m"),  # on time, a later filling for b1
    ]
    res = replay(topo_dir(ab), events, switches=[("+1m", topo_dir(keep)), ("+2m", topo_dir(ab))])
    assert [d["evidence"] for d in res.decisions] == [["a1", "b1"]]
