"""A generated stream through Kafka gives the same decisions as `tactful replay` on the same events."""

from __future__ import annotations

from typing import Any

from streams.generate import generate_events
from streams.replay import replay_numbered
from streams.timeutil import DAY, format_time, parse_time
from streams.topology import load_folder
from tests.integration.conftest import REPO, Namespace, wait_until

START = parse_time("2026-05-04T00:00:00Z")
EVENTS = 50_000


def stream(customers: int, total: int, seed: int, partitions: int) -> list[dict[str, Any]]:
    events = list(generate_events(total, customers, seed, start_ms=START, days=3.0))
    # One tick per partition far past every deadline, so each partition's watermark
    # (live) and the global one (replay) both pass every timer.
    last = max(parse_time(e["occurred_at"]) for e in events)
    ticks = [
        {
            "event_id": f"tick-{i}",
            "customer_id": f"tick-{i}",
            "type": "clock_tick",
            "occurred_at": format_time(last + 40 * DAY),
        }
        for i in range(64)
    ]
    return events + ticks


def replayed(events: list[dict[str, Any]]) -> set[tuple[str, str]]:
    result = replay_numbered(load_folder(REPO / "topologies"), enumerate(events, 1))
    return {(d.decision_id, d.status) for d in result.all_decisions}


def processed(ns: Namespace, workers: list[Any]) -> float:
    total = 0.0
    for w in workers:
        for name, value in w.metrics().items():
            if name.startswith(
                ("tactful_events_total", "tactful_events_rejected_total", "tactful_events_duplicate_total")
            ):
                total += value
    return total


def wait_processed(ns: Namespace, workers: list[Any], n: int) -> None:
    wait_until(lambda: processed(ns, workers) >= n, 240, f"{n} events processed", every=1.0)


def live(ns: Namespace, events: list[dict[str, Any]], workers: list[Any], n_decisions: int) -> set[tuple[str, str]]:
    ns.feed(events)
    wait_processed(ns, workers, len(events))
    got = ns.decisions("audit", lambda ds: len(ds) >= n_decisions, timeout=120)
    return {(d.decision_id, d.status) for d in got}


def test_fifty_thousand_events_through_kafka_match_replay(services: None, tmp_path: Any) -> None:
    ns = Namespace(tmp_path, TACTFUL_IDLE_AFTER="3650d")  # historical times: no wall-clock advance
    try:
        w = ns.worker().wait_ready()
        events = stream(5_000, EVENTS, seed=11, partitions=4)
        expected = replayed(events)
        assert len(expected) > 1_000
        assert live(ns, events, [w], len(expected)) == expected
    finally:
        ns.cleanup()


def test_two_workers_share_partitions_and_decide_as_one(services: None, tmp_path: Any) -> None:
    ns = Namespace(tmp_path, TACTFUL_IDLE_AFTER="3650d")
    try:
        a = ns.worker("a").wait_ready()
        b = ns.worker("b").wait_ready()
        wait_until(lambda: len(a.partitions()) == 2 and len(b.partitions()) == 2, 90, "a 2+2 split")
        assert sorted(a.partitions() + b.partitions()) == [0, 1, 2, 3]
        events = stream(2_000, 15_000, seed=5, partitions=4)
        expected = replayed(events)
        assert live(ns, events, [a, b], len(expected)) == expected
        # Both did part of the work.
        assert processed(ns, [a]) > 0 and processed(ns, [b]) > 0
        # Either worker answers for any customer: the owner directly, the other by forwarding.
        from streams.live.partitioning import Partitioner

        owner = Partitioner(4)
        cust = next(e["customer_id"] for e in events if e["type"] == "purchase")
        mine, other = (a, b) if owner(cust) in a.partitions() else (b, a)
        direct = mine.get(f"/customers/{cust}?raw=1", token=ns.api_token)
        forwarded = other.get(f"/customers/{cust}?raw=1", token=ns.api_token)
        assert direct[0] == forwarded[0] == 200
        assert forwarded[1] == direct[1] and direct[1]["state"] is not None
        assert other.get(f"/customers/{cust}")[0] == 401
    finally:
        ns.cleanup()
