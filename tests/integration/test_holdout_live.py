"""Contract 7 live, real broker and Redis: with a 50% global control group, the held-out half of the
matches reaches neither a channel topic nor Redis, every match reaches the audit topic, and the
worker's counters of fired matches and goals by topology and arm equal a count of the audit topic.

The audit count is made here, from the records themselves (a fired match: one topology and
evidence among the SUPPRESS and ENGAGE records; its arm: the cause of its held-out records,
``treated`` when emitted; a goal: a GOAL record, its cause the arm), so that it does not share
code with the counters it checks.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections import Counter
from pathlib import Path

import redis

from streams.decisions import Decision, Kind, Status, bucket
from streams.mirror.keys import category_key, channel_key
from tests.integration.conftest import REPO, TACTFUL, Namespace, wait_until
from tests.integration.services import redis_url

SALT = "it-holdout"
CUSTOMERS = 24  # 12 in the control group, 12 not

POLICIES = f"""\
channels: [ads, email]
lateness: 10m
retention: 30d
holdout:
  percent: 50%
  salt: "{SALT}"
"""

PROMO = """\
topology: promo
version: 3
goal: {event: buy, within: 1m}
when:
  sequence:
    - {event: visit}
then:
  - suppress: {channels: [ads], category: "*", for: 1d}
  - engage: {channel: email, action: promo}
"""


def customers(prefix: str) -> tuple[list[str], list[str]]:
    """As many customers in the global control group (bucket < 5000) as out of it."""
    held: list[str] = []
    treated: list[str] = []
    i = 0
    while len(held) < CUSTOMERS // 2 or len(treated) < CUSTOMERS // 2:
        cid = f"{prefix}-{i}"
        side = held if bucket(SALT, cid) < 5000 else treated
        if len(side) < CUSTOMERS // 2:
            side.append(cid)
        i += 1
    return held, treated


def counts_from_audit(audit: list[Decision]) -> tuple[Counter[tuple[str, str]], Counter[tuple[str, str, str]]]:
    """Fired matches by (topology, arm) and goals by (topology, arm, outcome), counted from audit records.

    The seam for ``tactful report``: once it reads the audit topic, this can be its per-topology
    "fired matches by arm" and "goals by arm" over the same records instead.
    """
    arms: dict[tuple[str, tuple[str, ...]], str] = {}
    goals: Counter[tuple[str, str, str]] = Counter()
    for d in audit:
        if d.kind == Kind.GOAL:
            goals[(d.topology, str(d.cause), str(d.status))] += 1
        else:
            arm = str(d.cause) if d.status == Status.HELD_OUT else "treated"
            assert arms.setdefault((d.topology, d.evidence), arm) == arm
    return Counter((topology, arm) for (topology, _), arm in arms.items()), goals


def counts_from_report(
    namespace: Namespace, catalog: Path
) -> tuple[Counter[tuple[str, str]], Counter[tuple[str, str, str]]]:
    """The same counts, as ``tactful report --from-topic --json`` computes them from the audit topic."""
    out = subprocess.run(
        [TACTFUL, "report", "--from-topic", "--json", "--topologies", str(catalog), "--no-progress"],
        env={**os.environ, **namespace.env()},
        cwd=REPO,
        capture_output=True,
        check=True,
    )
    data = json.loads(out.stdout)
    matches: Counter[tuple[str, str]] = Counter()
    goals: Counter[tuple[str, str, str]] = Counter()
    for t in data["topologies"]:
        for arm, n in t["matches"].items():
            matches[(t["topology"], arm)] += n
        for arm, rate in ((t["goal"] or {}).get("arms") or {}).items():
            for outcome in ("reached", "missed"):
                goals[(t["topology"], arm, outcome)] += rate[outcome]
    return +matches, +goals


def test_held_out_matches_reach_audit_only_and_counters_match_the_audit(namespace: Namespace, tmp_path: Path) -> None:
    folder = tmp_path / "catalog"
    folder.mkdir()
    (folder / "policies.yaml").write_text(POLICIES)
    (folder / "promo.yaml").write_text(PROMO)
    # A short idle time: the missed goals come due as the quiet partitions' stream time follows the clock.
    # At-least-once, named: the end of the test counts a channel topic's records by its end
    # offsets, which exactly-once's transaction markers (one offset each) would add to.
    w = namespace.worker(
        TACTFUL_TOPOLOGIES=str(folder), TACTFUL_IDLE_AFTER="5s", TACTFUL_PROCESSING_GUARANTEE="at_least_once"
    ).wait_ready()

    held, treated = customers(f"h-{namespace.id}")
    every = held + treated
    buyers = set(every[::2])  # half of each arm reaches the goal: the list alternates no arm
    start = int(time.time() * 1000) - 30 * 60_000  # old enough for every goal window to end by the clock
    events = []
    for n, cid in enumerate(every):
        at = start + n * 1000
        events.append({"event_id": f"v{n}", "customer_id": cid, "type": "visit", "occurred_at": at, "channel": "web"})
        if cid in buyers:
            events.append(
                {"event_id": f"b{n}", "customer_id": cid, "type": "buy", "occurred_at": at + 30_000, "channel": "web"}
            )
    namespace.feed(events)
    namespace.wait_committed(len(events))

    # Every match reaches the audit topic: two records each, and one GOAL record once its window ends.
    audit = namespace.decisions(
        "audit", lambda ds: sum(d.kind == Kind.GOAL for d in ds) >= CUSTOMERS and len(ds) >= 3 * CUSTOMERS, 90
    )
    assert len(audit) == 3 * CUSTOMERS
    by_status = Counter((d.kind, d.status, d.cause) for d in audit)
    half = CUSTOMERS // 2
    assert by_status == {
        (Kind.SUPPRESS, Status.EMITTED, None): half,
        (Kind.ENGAGE, Status.EMITTED, None): half,
        (Kind.SUPPRESS, Status.HELD_OUT, "holdout_global"): half,
        (Kind.ENGAGE, Status.HELD_OUT, "holdout_global"): half,
        (Kind.GOAL, Status.REACHED, "treated"): len(buyers & set(treated)),
        (Kind.GOAL, Status.MISSED, "treated"): len(set(treated) - buyers),
        (Kind.GOAL, Status.REACHED, "holdout_global"): len(buyers & set(held)),
        (Kind.GOAL, Status.MISSED, "holdout_global"): len(set(held) - buyers),
    }
    assert {d.customer_id for d in audit if d.status == Status.HELD_OUT} == set(held)

    # Only the treated half reaches the channel topics (every input record's effects have landed).
    s = namespace.settings()
    for channel, kind in (("ads", Kind.SUPPRESS), ("email", Kind.ENGAGE)):
        assert namespace.end_offsets(s.topics.decision(channel)) == half
        sent = namespace.decisions(channel, lambda ds: len(ds) >= half)
        assert {d.customer_id for d in sent} == set(treated) and {d.kind for d in sent} == {kind}

    # ... and Redis: the mirror writes the treated half's suppressions, never a held-out one.
    r = redis.Redis.from_url(redis_url())
    prefix = f"t{namespace.id}"
    # Key names from the mirror's own layout (streams.mirror.keys), whatever it is.
    for cid in treated:
        key = category_key(prefix, cid, "ads", "*")
        wait_until(lambda key=key: r.exists(key), 20, f"redis key {key}")
    assert not any(r.exists(category_key(prefix, cid, "ads", "*"), channel_key(prefix, cid, "ads")) for cid in held)
    # Every suppression key of the namespace (an any-category one is written under two names) is a treated one.
    expected = {category_key(prefix, cid, "ads", "*") for cid in treated} | {
        channel_key(prefix, c, "ads") for c in treated
    }
    assert {k.decode() for k in r.scan_iter(match=f"{prefix}:s:*")} == expected

    # The live counters equal the audit count, by topology and arm.
    matches, goals = counts_from_audit(audit)
    assert counts_from_report(namespace, folder) == (matches, goals)
    assert matches == {("promo", "treated"): half, ("promo", "holdout_global"): half}

    metrics = w.metrics()
    live_matches = {key: value for key, value in metrics.items() if key.startswith("tactful_matches_fired_total{")}
    live_goals = {key: value for key, value in metrics.items() if key.startswith("tactful_goals_total{")}
    assert live_matches == {
        f'tactful_matches_fired_total{{arm="{arm}",topology="{topology}"}}': float(n)
        for (topology, arm), n in matches.items()
    }
    assert live_goals == {
        f'tactful_goals_total{{arm="{arm}",outcome="{outcome}",topology="{topology}"}}': float(n)
        for (topology, arm, outcome), n in goals.items()
    }
    assert not any(cid in key for key in metrics for cid in every)  # no customer id in any label

    # One customer, readable, live: a held-out one's view says so; the token is checked; raw only on demand.
    token = namespace.api_token
    status, view = w.get(f"/customers/{held[0]}", token=token)
    assert status == 200 and view["arms"] == {"promo": "holdout_global"}, view
    assert [(d["kind"], d["status"]) for d in view["recent_decisions"] if d["kind"] != "GOAL"] == [
        ("SUPPRESS", "held_out"),
        ("ENGAGE", "held_out"),
    ]
    assert all("global control group" in d["reason"] for d in view["recent_decisions"] if d["kind"] != "GOAL")
    assert "state" not in view and "state" in w.get(f"/customers/{held[0]}?raw=1", token=token)[1]
    assert w.get(f"/customers/{held[0]}")[0] == 401
    assert w.get(f"/customers/{held[0]}", token="wrong")[0] == 403
    assert w.get(f"/customers/nobody-{namespace.id}", token=token)[0] == 404
