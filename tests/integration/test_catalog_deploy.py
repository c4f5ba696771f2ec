"""A catalog deployed mid-stream to two running workers, through the catalog topic.

One scenario (a module fixture, run once): two workers start on a base
catalog, which the first of them publishes as the first version; half of a
generated stream goes through; ``tactful deploy`` publishes a new catalog at
time ``T`` that changes one topology, removes one, adds one and flips one from
shadow to live; a corrupt record and one of a newer format follow it on the
catalog topic; then the rest of the stream. The tests check what each part
left: the switch at ``T``, the refusals, a restart, and (once the engine's
switch is merged) equality with ``replay --switch`` over the exported history.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest

from streams.decisions import Decision
from streams.generate import generate_events
from streams.live.catalog.kafka import publish_raw
from streams.live.catalog.record import CatalogRecord, Deployed, content_hash, read_folder
from streams.live.partitioning import Partitioner
from streams.timeutil import DAY, HOUR, MINUTE, format_time, parse_time
from tests.integration.conftest import REPO, TACTFUL, Namespace, WorkerProcess, wait_until

START = parse_time("2026-05-04T00:00:00Z")
T = START + 36 * HOUR
LATENESS = 10 * MINUTE
# The stand-in switch applies a version just after the event that moved the watermark past T
# (at least T + lateness): decisions up to that event may still be the old catalog's.
MARGIN = 30 * MINUTE
SHADOW_TO_LIVE = "abandoned_cart_reminder"
CHANGED = "activation_nudge"
REMOVED = "failed_login_guard"
ADDED = "cart_ads_retarget"


def catalogs(root: Path) -> tuple[Path, Path]:
    """The base catalog (the repository's, one topology in shadow) and the one deployed at T."""
    base, new = root / "base", root / "new"
    shutil.copytree(REPO / "topologies", base)
    cart = base / f"{SHADOW_TO_LIVE}.yaml"
    cart.write_text(cart.read_text().replace("version: 1\n", "version: 1\nmode: shadow\n", 1))
    shutil.copytree(REPO / "topologies", new)
    (new / f"{REMOVED}.yaml").unlink()
    nudge = new / f"{CHANGED}.yaml"
    nudge.write_text(nudge.read_text().replace("version: 1", "version: 2").replace("expires: 48h", "expires: 24h"))
    added = (REPO / "topologies" / f"{SHADOW_TO_LIVE}.yaml").read_text()
    added = added.replace(f"topology: {SHADOW_TO_LIVE}", f"topology: {ADDED}").replace("channel: email", "channel: ads")
    (new / f"{ADDED}.yaml").write_text(added)
    return base, new


def ticks(at: int, tag: str) -> list[dict[str, Any]]:
    """One event per partition (and more) at ``at``: moves every partition's watermark there."""
    return [
        {
            "event_id": f"tick-{tag}-{i}",
            "customer_id": f"tick-{tag}-{i}",
            "type": "clock_tick",
            "occurred_at": format_time(at),
        }
        for i in range(64)
    ]


@dataclass
class Scenario:
    ns: Namespace
    workers: dict[str, WorkerProcess]
    base: Path
    new: Path
    events: list[dict[str, Any]]
    audit: list[Decision]
    first_hash: str
    new_hash: str
    deployed: str  # what `tactful deploy` printed
    refused: dict[str, dict[str, float]]  # per worker, its refusal counters by reason


def every(ns: Namespace, channel_or_audit: str) -> list[Decision]:
    """Every decision on a decision topic (or the audit topic) as it is now."""
    s = ns.settings()
    topic = s.topics.audit if channel_or_audit == "audit" else s.topics.decision(channel_or_audit)
    end = ns.end_offsets(topic)
    return ns.decisions(channel_or_audit, lambda ds: len(ds) >= end, timeout=120)


def tactful(ns: Namespace, *args: str) -> subprocess.CompletedProcess[str]:
    import os

    return subprocess.run(
        [TACTFUL, *args], cwd=REPO, env={**os.environ, **ns.env()}, capture_output=True, text=True, timeout=120
    )


def catalog_status(w: WorkerProcess) -> dict[str, Any]:
    return dict(w.get("/ready")[1]["catalog"])


def processed(workers: list[WorkerProcess]) -> float:
    total = 0.0
    for w in workers:
        for name, value in w.metrics().items():
            if name.startswith(
                ("tactful_events_total", "tactful_events_rejected_total", "tactful_events_duplicate_total")
            ):
                total += value
    return total


def refusals(w: WorkerProcess) -> dict[str, float]:
    found = {}
    for name, value in w.metrics().items():
        if name.startswith("tactful_catalog_refused_total{"):
            found[name.split('reason="')[1].split('"')[0]] = value
    return found


@pytest.fixture(scope="module")
def scenario(services: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scenario]:
    root = tmp_path_factory.mktemp("catalog")
    base, new = catalogs(root)
    # At-least-once, named: every() takes a topic's end offsets for its record count, which
    # exactly-once's transaction markers (one offset each) would outnumber.
    ns = Namespace(
        root,
        TACTFUL_IDLE_AFTER="3650d",
        TACTFUL_TOPOLOGIES=str(base),
        TACTFUL_PROCESSING_GUARANTEE="at_least_once",
    )
    try:
        a = ns.worker("a", TACTFUL_INSTANCE_ID="a").wait_ready()
        b = ns.worker("b", TACTFUL_INSTANCE_ID="b").wait_ready()
        wait_until(lambda: len(a.partitions()) == 2 and len(b.partitions()) == 2, 90, "a 2+2 split")
        first_hash = catalog_status(a)["newest"]["hash"]
        assert catalog_status(b)["newest"]["hash"] == first_hash  # one first version, whoever published it

        events = list(generate_events(8000, 1000, 7, start_ms=START, days=3.0, scenario_rate=0.5))
        # Before T by more than lateness: every committed watermark stays behind T.
        cut = next(i for i, e in enumerate(events) if parse_time(e["occurred_at"]) >= T - HOUR)
        first, rest = events[:cut], events[cut:] + ticks(START + 40 * DAY, "end")
        ns.feed(first)
        wait_until(lambda: processed([a, b]) >= len(first), 180, "the first half processed", every=1.0)
        ns.wait_committed(len(first))

        deployed = tactful(ns, "deploy", str(new), "--at", format_time(T))
        assert deployed.returncode == 0, deployed.stderr
        new_hash = content_hash(read_folder(new))
        for w in (a, b):
            wait_until(lambda w=w: catalog_status(w)["newest"]["hash"] == new_hash, 30, f"{w.name} to read the deploy")

        # A bad deploy never stops a worker: a corrupt record, then one of a newer format.
        settings = ns.settings()
        publish_raw(settings, b"garbage", b"\x00\x01 not a catalog")
        newer = orjson.loads(
            CatalogRecord(files=read_folder(base), at=T + HOUR, deployed=Deployed("x", "y", 0, "z", "w")).to_bytes()
        )
        newer["format"] = 99
        publish_raw(settings, b"newer", orjson.dumps(newer))
        for w in (a, b):
            wait_until(lambda w=w: refusals(w).get("format") == 1, 30, f"{w.name} to refuse the newer format")

        ns.feed(rest)
        everything = first + rest
        wait_until(lambda: processed([a, b]) >= len(everything), 240, "every event processed", every=1.0)
        ns.wait_committed(len(everything))
        # Committed: every decision is on the broker (they are sent before the offsets are committed).
        audit = every(ns, "audit")
        yield Scenario(
            ns=ns,
            workers={"a": a, "b": b},
            base=base,
            new=new,
            events=everything,
            audit=audit,
            first_hash=first_hash,
            new_hash=new_hash,
            deployed=deployed.stdout,
            refused={w.name: refusals(w) for w in (a, b)},
        )
    finally:
        ns.cleanup()


def test_the_deploy_says_what_changed(scenario: Scenario) -> None:
    assert f"at {format_time(T)}" in scenario.deployed
    assert f"added {ADDED}; removed {REMOVED}; changed {SHADOW_TO_LIVE}, {CHANGED}" in scenario.deployed
    again = tactful(scenario.ns, "deploy", str(scenario.new))
    assert again.returncode == 0 and "nothing deployed" in again.stdout
    behind = tactful(scenario.ns, "deploy", str(scenario.base), "--at", format_time(T + MINUTE))
    assert behind.returncode == 2 and "not ahead of partition" in behind.stderr
    listed = tactful(scenario.ns, "catalog")
    lines = listed.stdout.splitlines()
    assert [r.split()[0] for r in lines[1:3]] == [scenario.first_hash[7:19], scenario.new_hash[7:19]]
    assert lines[3:] == [f"in force at the committed watermarks: {scenario.new_hash[7:19]} on partition(s) 0, 1, 2, 3"]


def test_every_partition_runs_the_new_version(scenario: Scenario) -> None:
    per: dict[str, str] = {}
    for w in scenario.workers.values():
        status = catalog_status(w)
        per.update(status["partitions"])
        assert status["in_force"] == [scenario.new_hash]
        assert w.metrics()[f'tactful_catalog_info{{hash="{scenario.new_hash}"}}'] == 1
    assert sorted(per) == ["0", "1", "2", "3"]


def test_bad_records_are_refused_and_both_workers_go_on_deciding(scenario: Scenario) -> None:
    for name, counts in scenario.refused.items():
        assert counts == {"corrupt": 1, "format": 1}, name
    # Both went on deciding after the refusals: each owns customers decided for after T.
    owner = Partitioner(4)
    after = {owner(d.customer_id) for d in scenario.audit if d.effective_at > T + HOUR and d.kind.value != "GOAL"}
    for w in scenario.workers.values():
        assert after & set(int(p) for p in catalog_status(w)["partitions"]), w.name


def by(scenario: Scenario, topology: str) -> list[Decision]:
    return [d for d in scenario.audit if d.topology == topology]


def test_each_kind_of_change_takes_effect_at_t(scenario: Scenario) -> None:
    # Shadow until T: audited as shadow, never emitted; live after it.
    cart = [d for d in by(scenario, SHADOW_TO_LIVE) if d.kind.value == "ENGAGE"]
    assert cart and all(d.status.value in ("shadow", "skipped") for d in cart if d.effective_at < T - LATENESS)
    assert any(d.status.value == "shadow" for d in cart)
    assert any(d.status.value == "emitted" for d in cart if d.effective_at >= T)
    assert not any(d.status.value == "emitted" for d in cart if d.effective_at < T - LATENESS)
    shadow_sent = every(scenario.ns, "email")
    assert not any(d.topology == SHADOW_TO_LIVE and d.effective_at < T - LATENESS for d in shadow_sent)
    # Changed: the new version's decisions carry version 2.
    nudges = [d for d in by(scenario, CHANGED) if d.kind.value == "ENGAGE"]
    assert {d.topology_version for d in nudges if d.effective_at < T - LATENESS} == {1}
    assert {d.topology_version for d in nudges if d.effective_at >= T + MARGIN} == {2}
    # Removed: nothing new from it after T (its goals may still resolve; RELEASEs of its suppressions
    # at T are the engine's switch's).
    removed = [d for d in by(scenario, REMOVED) if d.kind.value in ("SUPPRESS", "ENGAGE")]
    assert removed and all(d.effective_at < T + MARGIN for d in removed)
    # Added: it decides, from T on.
    added = by(scenario, ADDED)
    assert added and all(d.effective_at >= T - LATENESS for d in added)


def test_the_live_period_replays_with_the_exported_history(scenario: Scenario) -> None:
    events = scenario.ns.folder / "events.jsonl"
    events.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in scenario.events))
    out = scenario.ns.folder / "history"
    exported = tactful(scenario.ns, "catalog", "export", str(out), "--events", str(events))
    assert exported.returncode == 0, exported.stderr
    import shlex

    command = shlex.split(exported.stdout.strip())
    assert command[:2] == ["tactful", "replay"] and "--switch" in command
    replayed = tactful(scenario.ns, *command[1:], "--audit")
    assert replayed.returncode == 0, replayed.stderr
    expected = {(r["decision_id"], r["status"]) for r in map(json.loads, replayed.stdout.splitlines())}
    assert {(d.decision_id, d.status.value) for d in scenario.audit} == expected


def test_a_restarted_worker_comes_back_on_the_version_in_force(scenario: Scenario) -> None:
    ns, a = scenario.ns, scenario.workers["a"]
    a.stop()
    # Same name: same data folder and static member id; its --topologies folder is still the base.
    back = ns.worker("a", TACTFUL_INSTANCE_ID="a").wait_ready()
    scenario.workers["a"] = back
    wait_until(lambda: len(back.partitions()) == 2, 90, "the restarted worker's partitions")
    status = catalog_status(back)
    assert status["in_force"] == [scenario.new_hash]
    # It decides under the new version: a phone bought and not activated, on one of its partitions.
    owner = Partitioner(4)
    mine = set(back.partitions())
    cust = next(f"restart-{i}" for i in range(1000) if owner(f"restart-{i}") in mine)
    later = START + 41 * DAY
    bought = {
        "event_id": "restart-buy",
        "customer_id": cust,
        "type": "purchase",
        "occurred_at": format_time(later),
        "attributes": {"category": "phone"},
    }
    ns.feed([bought, *ticks(later + 2 * DAY, "restart")])
    got = ns.decisions("sms", lambda ds: any(d.customer_id == cust and d.topology == CHANGED for d in ds), timeout=120)
    assert {d.topology_version for d in got if d.customer_id == cust and d.topology == CHANGED} == {2}
