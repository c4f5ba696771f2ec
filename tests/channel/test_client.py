"""The channel client's loop over a fake consumer and fakeredis: once, in order, held, skipped, forgotten."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import fakeredis
import pytest

from streams.channel import ChannelClient, Delivery, Forget
from streams.channel.ledger import decision_key
from streams.codec import avro
from streams.decisions import Kind
from streams.settings import Settings
from tests.channel.fakes import Consumer, Producer, decision

NOW = 1_000_000


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> int:
        return self.now


class Recorder:
    """The caller's functions: every hand-over, in order; optionally failing on one decision."""

    def __init__(self, fail_on: str | None = None) -> None:
        self.calls: list[tuple[str, int]] = []
        self.forgets: list[Forget] = []
        self.fail_on = fail_on

    def on_decision(self, d: Delivery) -> None:
        self.calls.append((d.decision.decision_id, d.attempt))
        if d.decision.decision_id == self.fail_on:
            self.fail_on = None
            raise RuntimeError("the channel's send failed")

    def on_forget(self, f: Forget) -> None:
        self.forgets.append(f)

    @property
    def ids(self) -> list[str]:
        return [i for i, _ in self.calls]


@pytest.fixture()
def redis() -> Iterator[fakeredis.FakeAsyncRedis]:
    yield fakeredis.FakeAsyncRedis(server=fakeredis.FakeServer())


def settings() -> Settings:
    return Settings.from_env({"TACTFUL_REDIS_PREFIX": "tp"})


def client(consumer: Consumer, redis: fakeredis.FakeAsyncRedis, clock: Clock, group: str = "g") -> ChannelClient:
    return ChannelClient(settings(), "email", group=group, clock=clock, redis=redis, consumer=consumer)


def run(c: ChannelClient, consumer: Consumer, rec: Recorder, until: Callable[[], bool] | None = None) -> None:
    """One run of the client until the consumer is drained (and ``until`` holds)."""
    more = until or (lambda: True)
    c.run(rec.on_decision, on_forget=rec.on_forget, should_stop=lambda: consumer.drained() and more())


def test_every_decision_once_in_order_and_committed_to_the_end(redis: fakeredis.FakeAsyncRedis) -> None:
    consumer = Consumer({})
    for n in range(10):
        consumer.add_decision(n % 2, decision(n, f"c{n}"))
    rec, clock = Recorder(), Clock()
    c = client(consumer, redis, clock)
    run(c, consumer, rec)
    assert sorted(rec.ids) == [f"d{n:04d}" for n in range(10)]
    assert [i for i in rec.ids if int(i[1:]) % 2 == 0] == [f"d{n:04d}" for n in range(0, 10, 2)]
    assert all(attempt == 1 for _, attempt in rec.calls)
    assert consumer.committed == {0: 5, 1: 5}
    assert c.stats.handed == 10 and c.stats.duplicates == 0


def test_a_restart_from_old_offsets_hands_nothing_over_again(redis: fakeredis.FakeAsyncRedis) -> None:
    consumer = Consumer({})
    for n in range(6):
        consumer.add_decision(0, decision(n, f"c{n}"))
    rec, clock = Recorder(), Clock()
    run(client(consumer, redis, clock), consumer, rec)
    consumer.committed.clear()  # the commits were lost: everything is read again
    again = client(consumer, redis, clock)
    run(again, consumer, rec)
    assert len(rec.calls) == 6
    assert again.stats.duplicates == 6 and again.stats.handed == 0


def test_another_group_gets_every_decision_too(redis: fakeredis.FakeAsyncRedis) -> None:
    consumer = Consumer({})
    consumer.add_decision(0, decision(1))
    first, second = Recorder(), Recorder()
    run(client(consumer, redis, Clock(), group="a"), consumer, first)
    consumer.committed.clear()
    run(client(consumer, redis, Clock(), group="b"), consumer, second)
    assert first.ids == second.ids == ["d0001"]


def test_a_function_that_raises_gets_the_decision_again_with_the_next_attempt(
    redis: fakeredis.FakeAsyncRedis,
) -> None:
    consumer = Consumer({})
    for n in range(5):
        consumer.add_decision(0, decision(n, f"c{n}"))
    rec, clock = Recorder(fail_on="d0002"), Clock()
    failed = client(consumer, redis, clock)
    with pytest.raises(RuntimeError):
        run(failed, consumer, rec)
    assert consumer.committed == {0: 2}  # not past the failed one
    assert consumer.closed and failed._consumer is None  # left the group: the next run starts from the commit
    restarted = client(consumer, redis, clock)
    run(restarted, consumer, rec)
    assert rec.calls == [("d0000", 1), ("d0001", 1), ("d0002", 1), ("d0002", 2), ("d0003", 1), ("d0004", 1)]
    assert restarted.stats.redelivered == 1
    assert consumer.committed == {0: 5}


def test_not_before_holds_only_its_customer(redis: fakeredis.FakeAsyncRedis) -> None:
    consumer = Consumer({}, batch=10)
    consumer.add_decision(0, decision(0, "quiet", not_before=NOW + 5_000))
    consumer.add_decision(0, decision(1, "other"))
    consumer.add_decision(0, decision(2, "quiet", kind=Kind.SUPPRESS))  # waits behind the held ENGAGE
    consumer.add_decision(0, decision(3, "other"))
    rec, clock = Recorder(), Clock()
    c = client(consumer, redis, clock)
    run(c, consumer, rec)
    assert rec.ids == ["d0001", "d0003"]
    assert consumer.committed == {0: 0}  # pinned at the held decision

    clock.now = NOW + 5_000
    steps = iter(range(3))
    run(c, consumer, rec, until=lambda: next(steps, None) is None)
    assert rec.ids == ["d0001", "d0003", "d0000", "d0002"]
    assert consumer.committed == {0: 4}
    assert c.stats.duplicates == 2  # the restart read d0001 and d0003 again


def test_expired_decisions_are_skipped_when_read_or_when_due(redis: fakeredis.FakeAsyncRedis) -> None:
    consumer = Consumer({}, batch=10)
    consumer.add_decision(0, decision(0, "a", expires_at=NOW))  # expired when read
    consumer.add_decision(0, decision(1, "b", not_before=NOW + 10, expires_at=NOW + 5))  # expires while held
    consumer.add_decision(0, decision(2, "c", expires_at=NOW + 1))
    rec, clock = Recorder(), Clock()
    c = client(consumer, redis, clock)

    def later() -> bool:
        clock.now = NOW + 20
        return not any(h.held for h in c._holds.values())

    c.run(rec.on_decision, on_forget=rec.on_forget, should_stop=lambda: consumer.drained() and later())
    assert rec.ids == ["d0002"]
    assert c.stats.expired == 2
    assert consumer.committed == {0: 3}


def test_a_forget_record_drops_held_decisions_and_is_handed_over_once(redis: fakeredis.FakeAsyncRedis) -> None:
    consumer = Consumer({}, batch=10)
    consumer.add_decision(0, decision(0, "gone", not_before=NOW + 5_000))
    consumer.add_decision(0, decision(1, "kept", not_before=NOW + 5_000))
    consumer.add_forget(0, "gone", NOW - 1)
    consumer.add_decision(0, decision(2, "gone"))  # after the erase: an ordinary decision
    rec, clock = Recorder(), Clock()
    c = client(consumer, redis, clock)
    run(c, consumer, rec)
    assert rec.forgets == [Forget("gone", NOW - 1)]
    assert rec.ids == ["d0002"]
    assert c.stats.dropped == 1 and c.stats.forgets == 1
    consumer.committed.clear()
    run(client(consumer, redis, clock), consumer, rec)
    assert rec.forgets == [Forget("gone", NOW - 1)]  # not twice


def test_records_that_are_not_decisions_are_skipped_and_counted(redis: fakeredis.FakeAsyncRedis) -> None:
    consumer = Consumer({})
    consumer.add(0, "x", None)  # a plain tombstone
    consumer.add(0, "x", b"not avro")
    consumer.add(0, "x", None, [("tactful.forget", b"yesterday")])
    consumer.add_decision(0, decision(1))
    rec = Recorder()
    c = client(consumer, redis, Clock())
    run(c, consumer, rec)
    assert rec.ids == ["d0001"]
    assert sum(c.stats.skipped.values()) == 3
    assert set(c.stats.skipped) >= {"tombstone", "bad_forget"}
    assert consumer.committed == {0: 4}


def test_reading_pauses_while_too_many_are_held(redis: fakeredis.FakeAsyncRedis) -> None:
    consumer = Consumer({}, batch=1)
    for n in range(4):
        consumer.add_decision(0, decision(n, f"c{n}", not_before=NOW + 1_000))
    rec, clock = Recorder(), Clock()
    c = ChannelClient(settings(), "email", group="g", clock=clock, redis=redis, consumer=consumer, max_held=2)
    seen: list[bool] = []

    def stop() -> bool:
        seen.append(consumer.paused)
        if len(seen) == 6:
            clock.now = NOW + 1_000
        return consumer.drained() and not any(h.held for h in c._holds.values())

    c.run(rec.on_decision, on_forget=rec.on_forget, should_stop=stop)
    assert True in seen and not consumer.paused
    assert rec.ids == ["d0000", "d0001", "d0002", "d0003"]


def test_an_outcome_reported_by_the_function_is_flushed_before_the_done_mark(
    redis: fakeredis.FakeAsyncRedis, monkeypatch: pytest.MonkeyPatch
) -> None:
    consumer = Consumer({})
    consumer.add_decision(0, decision(7, "c7"))
    log: list[str] = []
    c = client(consumer, redis, Clock())
    producer = Producer(log)
    c._producer = producer
    ledger = c._ledger
    assert ledger is not None
    real_done = ledger.done

    async def done(key: str) -> None:
        log.append("done")
        await real_done(key)

    monkeypatch.setattr(ledger, "done", done)
    run(c, consumer, Recorder())
    assert log == ["done"]  # nothing reported, nothing flushed

    def report(d: Delivery) -> None:
        c.report(d.decision, "clicked")

    consumer.add_decision(0, decision(8, "c8"))
    c.run(report, on_forget=lambda f: None, should_stop=consumer.drained)
    assert log == ["done", "produce", "flush", "done"]
    topic, key, value = producer.records[0]
    event = avro.decode(value, avro.local_registry().resolve)
    assert (topic, key) == ("touchpoints", b"c8")
    assert event["type"] == "decision.clicked" and event["attributes"] == {"decision_id": "d0008"}


def test_an_outcome_the_broker_refused_stops_the_run_before_the_done_mark(
    redis: fakeredis.FakeAsyncRedis,
) -> None:
    from streams.errors import InfraError

    consumer = Consumer({})
    consumer.add_decision(0, decision(9, "c9"))
    c = client(consumer, redis, Clock())
    producer = Producer([])
    producer.fail = "TOPIC_AUTHORIZATION_FAILED"
    c._producer = producer
    with pytest.raises(InfraError, match="TOPIC_AUTHORIZATION_FAILED"):
        c.run(lambda d: c.report(d.decision, "failed"), on_forget=lambda f: None, should_stop=consumer.drained)
    assert consumer.committed.get(0, 0) == 0  # not past it: read again by the next run
    check = fakeredis.FakeRedis(server=redis.connection_pool.connection_kwargs["server"])
    assert check.hgetall(decision_key("tp", "g", "d0009")) == {b"attempts": b"1"}  # claimed, not done


def test_ledger_keys_are_under_the_prefix_and_expire(redis: fakeredis.FakeAsyncRedis) -> None:
    consumer = Consumer({})
    consumer.add_decision(0, decision(3))
    c = ChannelClient(settings(), "email", group="g", clock=Clock(), redis=redis, consumer=consumer, ttl_ms=60_000)
    run(c, consumer, Recorder())
    key = decision_key("tp", "g", "d0003")
    assert key == "tp:ch:g:d0003"
    check = fakeredis.FakeRedis(server=redis.connection_pool.connection_kwargs["server"])
    assert check.hgetall(key) == {b"attempts": b"1", b"done": b"1"}
    assert 0 < check.pttl(key) <= 60_000


def test_a_group_is_required() -> None:
    from streams.errors import ConfigError

    with pytest.raises(ConfigError):
        ChannelClient(settings(), "email", group="")
