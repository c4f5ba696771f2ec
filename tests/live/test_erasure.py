"""Erasure in the live runtime (contract section 9), without Faust: the forget records in order
among the decisions, the changelog tombstone with the erase's offset, redelivery, expiry, the API's 404."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson

from streams.codec import avro
from streams.engine.state import CustomerState
from streams.live import metrics as live_metrics
from streams.live.api import WorkerApi
from streams.live.codecs import Codecs
from streams.live.forget import H_FORGET
from streams.live.runtime import Record, Runtime, RuntimeIO, StateTable
from streams.settings import Settings
from streams.topology import load_folder
from tests.live.test_runtime import NOW, TOPOLOGIES, Log, Sink, Source, event, on_partition
from tests.live.test_runtime import records as batch_of

DAY = 86_400_000


def make(log: Log, clock: list[float], data: dict[str, Any] | None = None, **settings: Any) -> Runtime:
    io = RuntimeIO(
        source=Source(log),
        sink=Sink(log),
        state=StateTable({} if data is None else data, lambda p, k, v: log.effects.append(("state", (p, k, v)))),
        codecs=Codecs(lambda b: avro.decode(b, avro.local_registry().resolve), lambda d: d.decision_id.encode(), 0),
        metrics=live_metrics.create(),
    )
    # The fake Sink has no transactional commit: at-least-once, named whatever the default.
    flat = {"redis_url": "", "processing_guarantee": "at_least_once", **settings}
    return Runtime(Settings.from_flat(flat), load_folder(TOPOLOGIES), io, clock=lambda: clock[0])


def erase(cust: str, at: int) -> bytes:
    return event(f"x-{at}", cust, "tactful.erase", at)


def friction(cust: str, at: int = NOW) -> list[tuple[str, bytes]]:
    """The shipped post_purchase_friction sequence: three SUPPRESS and an ENGAGE."""
    return [
        (cust, event("p", cust, "purchase", at, category="phone")),
        (cust, event("f", cust, "activation_failed", at + 1000)),
        (cust, event("s", cust, "support_contact", at + 2000, resolved="false")),
    ]


def sent(log: Log) -> list[tuple[str, bytes | None, bytes | None, dict[str, bytes]]]:
    acked = [payload for kind, payload in log.effects if kind == "acked"]
    return [(t, k, v, h) for t, k, v, _, h in acked]


def state_writes(log: Log) -> list[tuple[str, bytes | None]]:
    return [(k, v) for kind, payload in log.effects if kind == "state" for _, k, v in [payload]]


def test_an_erase_tells_every_channel_after_the_decisions_made_before_it() -> None:
    log, clock = Log(), [NOW / 1000]
    rt = make(log, clock)
    outcome = asyncio.run(rt.handle(batch_of(*friction("c1"), ("c1", erase("c1", NOW + 3000)))))
    assert [(e.customer_id, e.erased_at) for e in outcome.erased] == [("c1", NOW + 3000)]
    records = sent(log)
    forgets = [(t, k, v, h) for t, k, v, h in records if H_FORGET in h]
    # One per channel topic of the shipped catalog, keyed by the customer, with no value.
    assert sorted(t for t, *_ in forgets) == sorted(rt._channel_topics)
    assert {(k, v, h[H_FORGET]) for _, k, v, h in forgets} == {(b"c1", None, b"2026-09-21T14:13:23.000Z")}
    # On each topic, after every decision made before the erase.
    for topic in rt._channel_topics:
        on_topic = [H_FORGET in h for t, _, _, h in records if t == topic]
        assert on_topic and on_topic[-1] and not any(on_topic[:-1])
    # The Redis mirror reads these topics in this order (tests/mirror/test_consumer.py: the
    # customer's keys go at the forget record, after the suppressions before it).


def test_the_changelog_holds_only_the_tombstone_with_the_erase_offset() -> None:
    log, clock = Log(), [NOW / 1000]
    rt = make(log, clock)
    asyncio.run(rt.handle(batch_of(*friction("c1"), ("c1", erase("c1", NOW + 3000)))))
    [(key, value)] = state_writes(log)
    assert key == "c1" and value is not None
    assert orjson.loads(value)["x"] == [NOW + 3000, 3]
    state = CustomerState.from_bytes(value)
    assert state.holds_only_tombstone() and state.erased_offset == 3


def test_redelivered_records_from_before_the_erase_rebuild_nothing() -> None:
    """At-least-once: the batch comes again after its state landed, to a worker restarted from the changelog."""
    log, clock = Log(), [NOW / 1000]
    rt = make(log, clock)
    # Later in event time than the erase, but before it in the partition: erased by its offset.
    batch = batch_of(*friction("c1", NOW + 60_000), ("c1", erase("c1", NOW)))
    first = asyncio.run(rt.handle(batch))
    assert len(first.decisions) == 4
    [(_, tombstone)] = state_writes(log)

    log2 = Log()
    restarted = make(log2, clock, data={"c1": tombstone})
    restarted.assign([on_partition("c1")])
    asyncio.run(restarted.tick())
    again = asyncio.run(restarted.handle(batch))
    assert again.decisions == [] and again.erased == []
    assert not [e for e in log2.effects if e[0] == "state"]
    assert not [r for r in sent(log2) if H_FORGET in r[3]]
    # A record after the erase, later in event time, starts from empty state.
    later = [
        Record(r.topic, r.partition, 10 + r.offset, r.key, r.value, r.headers, r.timestamp)
        for r in batch_of(*friction("c1", NOW + 60_000))
    ]
    assert len(asyncio.run(restarted.handle(later)).decisions) == 4


def test_a_redelivered_erase_changes_nothing_and_tells_no_one_again() -> None:
    log, clock = Log(), [NOW / 1000]
    rt = make(log, clock)
    asyncio.run(rt.handle(batch_of(("c1", erase("c1", NOW)))))
    log.effects.clear()
    outcome = asyncio.run(rt.handle(batch_of(("c1", erase("c1", NOW)))))
    assert outcome.erased == [] and not [r for r in sent(log) if H_FORGET in r[3]]


def test_the_tombstone_expires_into_a_null_in_the_changelog() -> None:
    log, clock = Log(), [NOW / 1000]
    rt = make(log, clock, sweep_every="1m")
    cust = "c1"
    other = next(c for c in (f"o{i}" for i in range(100)) if on_partition(c) == on_partition(cust))
    asyncio.run(rt.handle(batch_of((cust, erase(cust, NOW)))))
    # Stream time moves past the erase by more than retention (30 days) plus lateness.
    asyncio.run(rt.handle(batch_of((other, event("v", other, "page_view", NOW + 31 * DAY)), start=1)))
    log.effects.clear()
    clock[0] += 120
    asyncio.run(rt.tick())
    assert (cust, None) in state_writes(log)
    assert cust not in rt.data


def test_the_api_answers_404_for_an_erased_or_unknown_customer() -> None:
    from streams.live.api import WorkerStatus

    log, clock = Log(), [NOW / 1000]
    rt = make(log, clock)
    settings = Settings.from_flat({"redis_url": "", "api_token": "t"})
    status = WorkerStatus(
        recovering=lambda: False,
        rebalancing=lambda: False,
        warmed=lambda: True,
        joined=lambda: True,
        reachable=lambda: True,
        owner_url=lambda cid: None,  # type: ignore[arg-type,return-value]
    )
    api = WorkerApi(rt, settings, rt.metrics.registry, None, status)
    auth = {"Authorization": "Bearer t"}

    def get(cid: str) -> int:
        return asyncio.run(api.customer(cid, auth)).status

    asyncio.run(rt.handle(batch_of(*friction("c1"))))
    assert get("c1") == 200
    rt.assign(range(4))
    asyncio.run(rt.tick())
    unknown = next(c for c in (f"u{i}" for i in range(100)) if rt.owns(c))
    assert get(unknown) == 404
    asyncio.run(rt.handle(batch_of(("c1", erase("c1", NOW + 3000)), start=3)))
    assert get("c1") == 404
    asyncio.run(rt.handle(batch_of(("c1", event("v", "c1", "purchase", NOW + 4000, category="tv")), start=4)))
    assert get("c1") == 200
