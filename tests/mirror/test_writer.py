"""The worker side against fakeredis: outages lose nothing and keep the order; flush, stop, backoff, metrics."""

from __future__ import annotations

import time

import fakeredis
import pytest
from prometheus_client import CollectorRegistry

from streams.decisions import Kind
from streams.errors import MirrorUnavailable
from streams.mirror import Backoff, SuppressionMirror, explain, wall_clock_ms
from tests.mirror.support import HOUR, Harness, P, decision, run_async, started, until


@run_async
async def test_an_outage_loses_nothing_and_keeps_the_order() -> None:
    h = Harness(batch_size=2)  # the sequences below span several batches
    async with started(h):
        now = wall_clock_ms()
        h.server.connected = False
        h.mirror.submit(
            [
                # c1: suppress, release, suppress again: only this order leaves the second one.
                decision(customer="c1", expires_at=now + HOUR),
                decision(Kind.RELEASE, customer="c1", expires_at=None),
                decision(customer="c1", expires_at=now + 2 * HOUR),
                # c2: suppress then release: only this order leaves nothing.
                decision(customer="c2"),
                decision(Kind.RELEASE, customer="c2", expires_at=None),
                decision(customer="c3", channel="sms", category="*"),
            ]
        )
        await until(lambda: h.metric("tactful_redis_mirror_errors_total") >= 3)
        assert h.mirror.degraded
        assert h.mirror.pending == 6
        await until(lambda: h.mirror.lag_seconds > 0, what="the oldest pending write to age")
        assert h.metric("tactful_redis_mirror_lag_seconds") > 0
        assert h.metric("tactful_redis_mirror_writes_total", op="set") == 0

        h.server.connected = True
        await h.mirror.flush(5)
        assert not h.mirror.degraded
        assert h.mirror.pending == 0
        assert h.mirror.lag_seconds == 0
        assert h.metric("tactful_redis_mirror_lag_seconds") == 0
        assert h.metric("tactful_redis_mirror_writes_total", op="set") == 4
        assert h.metric("tactful_redis_mirror_writes_total", op="release") == 2
        assert await explain(h.client, P, "c1", "email", "phone") == [("t1", "phone", now + 2 * HOUR)]
        assert not await h.suppressed("c2", "email", None)
        assert await h.suppressed("c3", "sms", "anything")


@run_async
async def test_writes_submitted_while_retrying_queue_behind_the_failed_batch() -> None:
    h = Harness(batch_size=1)
    async with started(h):
        h.server.connected = False
        h.mirror.submit([decision()])
        await until(lambda: h.mirror.degraded)
        h.mirror.submit([decision(Kind.RELEASE, expires_at=None)])
        h.server.connected = True
        await h.mirror.flush(5)
        assert await h.dump() == {}


@run_async
async def test_flush_timing_out_says_how_many_writes_wait_and_why() -> None:
    h = Harness()
    h.mirror.submit([decision()])
    with pytest.raises(MirrorUnavailable, match=r"1 writes still pending after 0.05s \(the mirror is not running"):
        await h.mirror.flush(0.05)

    async with started(h):
        h.server.connected = False
        h.mirror.submit([decision(customer="c2")])
        await until(lambda: h.mirror.degraded)
        with pytest.raises(MirrorUnavailable, match=r"writes still pending .*ConnectionError"):
            await h.mirror.flush(0.05)
        h.server.connected = True
        await h.mirror.flush(5)


@run_async
async def test_stop_interrupts_the_backoff_and_keeps_what_did_not_land() -> None:
    h = Harness()
    h.mirror = SuppressionMirror(h.client, backoff=Backoff(initial_s=30, max_s=30), registry=CollectorRegistry())
    h.mirror.start()
    h.server.connected = False
    h.mirror.submit([decision()])
    await until(lambda: h.mirror.degraded)
    started_at = time.monotonic()
    await h.mirror.stop()
    assert time.monotonic() - started_at < 1
    assert h.mirror.pending == 1


def test_backoff_doubles_up_to_its_cap() -> None:
    backoff = Backoff(initial_s=0.1, max_s=0.5)
    delays = [backoff.initial_s]
    for _ in range(4):
        delays.append(backoff.after(delays[-1]))
    assert delays == [0.1, 0.2, 0.4, 0.5, 0.5]


def test_two_mirrors_share_the_metrics_of_one_registry() -> None:
    registry = CollectorRegistry()
    client = fakeredis.FakeAsyncRedis()
    SuppressionMirror(client, registry=registry)
    SuppressionMirror(client, registry=registry)  # no "Duplicated timeseries"
    assert registry.get_sample_value("tactful_redis_mirror_errors_total") == 0
