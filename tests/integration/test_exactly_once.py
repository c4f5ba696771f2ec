"""Exactly-once (TACTFUL_PROCESSING_GUARANTEE=exactly_once) through a kill -9.

A worker is killed with SIGKILL while it works through a backlog, with
transactions open, and started again. A ``read_committed`` reader of the
channel topics then finds every decision that ``tactful replay`` makes of the
same events, each exactly once: no repeat of a decision id (at-least-once
would send the killed batch's decisions again: `test_chaos_short.py` and
`test_restart.py` keep that mode tested), and the audit topic likewise.

Also: a worker frozen (SIGSTOP) past its session is fenced by the worker that
took its partitions and stays up; a live decision is visible promptly (each
batch commits its transaction); and test_restart.py's kill scenarios hold in
this mode (state recovered from a changelog ending in transaction markers,
stream time committed with the offsets in the transaction).
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest

from chaos.check import Findings, compare_decisions, decision_ids, read_topic
from streams.live.codecs import resolver
from streams.live.topics import channels
from streams.timeutil import parse_time
from streams.topology import load_folder
from tests.integration import test_restart as restart
from tests.integration.conftest import REPO, Namespace, wait_until
from tests.integration.services import kafka_bootstrap
from tests.integration.test_chaos_short import expected, journeys


def test_a_worker_killed_mid_stream_and_restarted_decides_each_decision_exactly_once(
    services: None, tmp_path: Any
) -> None:
    ns = Namespace(
        tmp_path,
        TACTFUL_PROCESSING_GUARANTEE="exactly_once",
        TACTFUL_IDLE_AFTER="3650d",  # historical times: no wall-clock advance
        # Small batches: many transactions, and the kill lands inside one of them.
        TACTFUL_BATCH_MAX="40",
    )
    try:
        events = journeys(1_200, 6_000, seed=31, start_ms=parse_time("2026-05-04T00:00:00Z"))
        want = expected(events)
        # Restarted under the same instance id, the worker takes its partitions back at once.
        a = ns.worker("a", TACTFUL_INSTANCE_ID="a").wait_ready()
        # Fed while the worker works: the kill lands in the middle of the stream.
        failed: list[BaseException] = []

        def feed() -> None:
            try:
                for i in range(0, len(events), 300):
                    ns.feed(events[i : i + 300])
            except BaseException as exc:
                failed.append(exc)

        feeder = threading.Thread(target=feed)
        feeder.start()
        try:
            ns.wait_committed(len(events) // 5, timeout=120)
            assert ns.committed() < len(events), "the stream was done before the kill: nothing in flight"
            a.stop(kill=True)
            a = ns.worker("a", TACTFUL_INSTANCE_ID="a").wait_ready()
        finally:
            feeder.join()
        assert failed == []
        ns.wait_committed(len(events), timeout=120)

        s = ns.settings()
        chans = [s.topics.decision(c) for c in channels(load_folder(REPO / "topologies"))]
        found: list[Findings] = []

        def complete() -> bool:
            found[:] = [compare_decisions(kafka_bootstrap(), chans, s.topics.audit, want, resolver(s))]
            return found[0].lost == 0 and found[0].audit_missing == 0

        with contextlib.suppress(AssertionError):
            wait_until(complete, 30, "every expected decision on its topic", every=1.0)
        f = found[0]
        assert f.expected > 200
        assert (f.lost, f.lost_ids, f.extra, f.duplicates) == (0, [], 0, 0)
        assert (f.audit_missing, f.audit_extra) == (0, 0)
        audit = Counter(
            i for i, _ in decision_ids([v for v, _ in read_topic(kafka_bootstrap(), s.topics.audit)], resolver(s))
        )
        assert [i for i, n in audit.items() if n > 1] == []
        # The restarted worker fenced the killed one's transactions and went on: it never failed a batch.
        assert a.proc is not None and a.proc.poll() is None
        assert "exiting so that the batch is processed again" not in a.log.read_text(errors="replace")
    finally:
        ns.cleanup()


def test_transactions_hold_back_nothing_from_live_traffic(services: None, tmp_path: Any) -> None:
    """A decision on live traffic is visible to a read_committed reader promptly: each batch's
    transaction is committed with it, not on a timer."""
    ns = Namespace(tmp_path, TACTFUL_PROCESSING_GUARANTEE="exactly_once")
    try:
        ns.worker("a").wait_ready()
        now = int(time.time() * 1000)
        cust = f"x-{ns.id}"
        ns.feed(
            [
                {
                    "event_id": "p",
                    "customer_id": cust,
                    "type": "purchase",
                    "occurred_at": now,
                    "channel": "web",
                    "attributes": {"category": "phone"},
                },
                {"event_id": "f", "customer_id": cust, "type": "activation_failed", "occurred_at": now + 1},
                {
                    "event_id": "s",
                    "customer_id": cust,
                    "type": "support_contact",
                    "occurred_at": now + 2,
                    "attributes": {"resolved": "false"},
                },
            ]
        )
        started = time.monotonic()
        engaged = ns.decisions("call_center", lambda ds: len(ds) >= 1, timeout=30)
        assert [d.evidence for d in engaged] == [("p", "f", "s")]
        assert time.monotonic() - started < 10
    finally:
        ns.cleanup()


def test_a_stalled_worker_is_fenced_by_the_one_that_took_its_partitions(services: None, tmp_path: Any) -> None:
    """A worker frozen (SIGSTOP) mid-stream past its session loses its partitions to the other
    worker, which fences its producers; thawed, it cannot commit what it had in flight. Every
    decision lands exactly once, and the thawed worker stays up (it is never crash-looped)."""
    ns = Namespace(
        tmp_path,
        TACTFUL_PROCESSING_GUARANTEE="exactly_once",
        TACTFUL_IDLE_AFTER="3650d",
        TACTFUL_BATCH_MAX="40",
        TACTFUL_SESSION_TIMEOUT="6",  # the broker's least
    )
    try:
        events = journeys(1_000, 5_000, seed=37, start_ms=parse_time("2026-05-04T00:00:00Z"))
        want = expected(events)
        a = ns.worker("a").wait_ready()
        b = ns.worker("b").wait_ready()
        wait_until(lambda: len(a.partitions()) + len(b.partitions()) == 4 and a.partitions(), 60, "both holding")
        ns.feed(events)
        ns.wait_committed(len(events) // 5, timeout=120)
        assert a.proc is not None
        a.proc.send_signal(signal.SIGSTOP)
        try:
            wait_until(lambda: len(b.partitions()) == 4, 60, "b holding every partition")
        finally:
            a.proc.send_signal(signal.SIGCONT)
        ns.wait_committed(len(events), timeout=120)
        # Thawed, a rejoins the group and works again; it never failed a batch. Given its fenced
        # partitions back (Faust then recovers nothing), it restarts once to recover them: here
        # the test is its supervisor.
        wait_until(lambda: a.proc is not None and (a.proc.poll() is not None or a.ready()), 60, "a ready or exited")
        log = a.log.read_text(errors="replace")
        if a.proc.poll() is not None:
            assert a.proc.returncode == 70 and "fenced and assigned here again; restarting" in log
            a = ns.worker("a").wait_ready()
            assert a.proc is not None
            wait_until(lambda: ns.committed() >= len(events), 60, "every offset still committed")
        assert a.proc.poll() is None
        assert "exiting so that the batch is processed again" not in log

        s = ns.settings()
        chans = [s.topics.decision(c) for c in channels(load_folder(REPO / "topologies"))]
        found: list[Findings] = []

        def complete() -> bool:
            found[:] = [compare_decisions(kafka_bootstrap(), chans, s.topics.audit, want, resolver(s))]
            return found[0].lost == 0 and found[0].audit_missing == 0

        with contextlib.suppress(AssertionError):
            wait_until(complete, 30, "every expected decision on its topic", every=1.0)
        f = found[0]
        assert f.expected > 200
        assert (f.lost, f.lost_ids, f.extra, f.duplicates) == (0, [], 0, 0)
        assert (f.audit_missing, f.audit_extra) == (0, 0)
    finally:
        ns.cleanup()


@pytest.mark.parametrize(
    "scenario",
    [
        restart.test_killed_worker_completes_a_sequence_begun_before_the_restart,
        restart.test_stream_time_survives_a_restart_so_lateness_does_not_change,
    ],
    ids=["sequence_across_a_kill", "stream_time_across_a_kill"],
)
def test_restart_scenarios_hold_with_exactly_once(
    services: None, tmp_path: Any, scenario: Callable[[Namespace], None]
) -> None:
    """test_restart.py's kill scenarios, with exactly-once: state recovered from a changelog that
    ends in transaction markers, and the stream time committed with the offsets in the transaction."""
    ns = Namespace(tmp_path, TACTFUL_PROCESSING_GUARANTEE="exactly_once")
    try:
        scenario(ns)
    finally:
        ns.cleanup()
