"""The channel client: one channel's decisions, each handed to your function once.

See :mod:`streams.channel` for the guarantees and their limits; this module is
the loop that keeps them:

1. read a record (``read_committed``, so a worker's aborted transactions are
   never seen) and give it to its partition's :class:`~streams.channel.hold.PartitionHold`;
2. for each record that is ready: skip it if expired, else *claim* it in the
   Redis ledger (the attempt number; nothing when it is done already), call the
   function, flush any outcome it reported, mark it *done*;
3. commit each partition's commit point (nothing before it is held or in hand).

A kill anywhere loses nothing (the commit only ever trails the done marks) and
hands nothing over twice, except a record whose function had begun and whose
done mark had not landed: that one is handed over again with ``attempt`` one
higher.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Self

from streams.channel.hold import Entry, PartitionHold
from streams.channel.ledger import DEFAULT_TTL_MS, Ledger, decision_key, forget_key
from streams.channel.outcomes import outcome_event
from streams.channel.records import Forget, decision_or_forget
from streams.decisions import Decision
from streams.errors import ConfigError, InfraError
from streams.settings import Settings

if TYPE_CHECKING:
    from streams.mirror import RedisClient

log = logging.getLogger(__name__)

Partition = tuple[str, int]


def wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass(frozen=True, slots=True)
class Delivery:
    """One decision handed to the function, and where it came from.

    ``attempt`` is 1 the first time; more when an earlier hand-over of the
    same decision began and did not finish (the process died while the
    function ran, or the function raised): check your own side effects then.
    """

    decision: Decision
    attempt: int
    topic: str
    partition: int
    offset: int

    @property
    def redelivered(self) -> bool:
        return self.attempt > 1


@dataclass(slots=True)
class ChannelStats:
    """What a :meth:`ChannelClient.run` did so far."""

    handed: int = 0  # decisions whose function returned
    forgets: int = 0  # forget records whose function returned
    duplicates: int = 0  # read again, already done (a restart, a rebalance): not handed over
    redelivered: int = 0  # hand-overs with attempt > 1
    expired: int = 0  # expires_at passed before the hand-over: skipped
    dropped: int = 0  # held decisions dropped by their customer's forget record
    skipped: Counter[str] = field(default_factory=Counter)  # records that are not decisions, by reason


OnDecision = Callable[[Delivery], object]
OnForget = Callable[[Forget], object]


class ChannelClient:
    """Consume one channel's decision topic; hand each decision to a function once.

    ``settings`` gives the brokers (TLS, SASL), the topic names, the Redis URL
    and key prefix; ``group`` is the Kafka consumer group, one per
    application. ``start`` is where a new group begins: ``earliest`` (the
    default: decisions made before the first start, expired ones skipped) or
    ``latest``. ``ttl_ms`` is how long the ledger remembers a decision.
    ``max_held`` bounds the decisions held for ``not_before``: beyond it the
    client stops reading until some are handed over. Run several clients in
    one group to share the partitions; a killed one's partitions move to the
    others after ``TACTFUL_SESSION_TIMEOUT`` (10 s as shipped), as a worker's
    do. ``clock`` (epoch ms),
    ``redis`` (an asyncio client) and ``consumer`` (a confluent-kafka
    consumer) replace what the client would make itself, for tests.
    """

    def __init__(
        self,
        settings: Settings,
        channel: str,
        *,
        group: str,
        start: Literal["earliest", "latest"] = "earliest",
        ttl_ms: int = DEFAULT_TTL_MS,
        max_held: int = 100_000,
        clock: Callable[[], int] = wall_clock_ms,
        redis: RedisClient | None = None,
        consumer: Any = None,
    ) -> None:
        if not group:
            raise ConfigError("the channel client needs a consumer group")
        self.settings = settings
        self._schema_id: int | None = None
        self.channel = channel
        self.group = group
        self.topic = settings.topics.decision(channel)
        self.start = start
        self.max_held = max_held
        self.clock = clock
        self.stats = ChannelStats()
        self._runner = asyncio.Runner()
        self._redis = redis
        self._ledger = Ledger(redis, ttl_ms=ttl_ms) if redis is not None else None
        self._ttl_ms = ttl_ms
        self._consumer: Any = consumer
        self._producer: Any = None
        self._reported = 0
        self._failed: list[str] = []
        self._holds: dict[Partition, PartitionHold[Decision | Forget]] = {}
        self._committed: dict[Partition, int] = {}
        self._paused = False
        self._decode: Callable[[bytes], Decision] | None = None

    # -- outcomes -----------------------------------------------------------------

    def report(
        self,
        decision: Decision,
        outcome: str,
        *,
        at_ms: int | None = None,
        event_id: str | None = None,
        attributes: dict[str, str] | None = None,
    ) -> str:
        """Send ``decision.<outcome>`` for ``decision`` to the input topic; return its event id.

        Called from the function, the event is flushed to the broker before the
        decision is marked done; called elsewhere, by :meth:`flush` or
        :meth:`close`. ``at_ms`` defaults to now.
        """
        from streams.live.codecs import touchpoint_schema_id
        from streams.live.feed import encode_event, producer

        event = outcome_event(
            decision, outcome, self.clock() if at_ms is None else at_ms, event_id=event_id, attributes=attributes
        )
        if self._producer is None:
            self._producer = producer(self.settings)
            # With a registry, outcomes carry its id for the touchpoint schema, as the feed's do.
            self._schema_id = touchpoint_schema_id(self.settings)
        key, value = encode_event(event, self._schema_id)
        while True:
            try:
                self._producer.produce(self.settings.topics.input, value=value, key=key, on_delivery=self._delivered)
                break
            except BufferError:
                self._producer.poll(0.05)
        self._reported += 1
        self._producer.poll(0)
        return str(event["event_id"])

    def _delivered(self, error: Any, message: Any) -> None:
        if error is not None:
            self._failed.append(str(error))

    def flush(self, timeout_s: float = 30.0) -> None:
        """Wait until every reported outcome is on the broker; :class:`InfraError` if one is not."""
        if self._producer is None or not self._reported:
            return
        left = self._producer.flush(timeout_s)
        failed, self._failed = self._failed, []
        if left or failed:
            self._reported = left
            why = f": {failed[0]}" if failed else ""
            raise InfraError(
                f"{left + len(failed)} outcome events were not delivered to {self.settings.topics.input}{why}"
            )
        self._reported = 0

    # -- consuming ----------------------------------------------------------------

    def run(
        self,
        on_decision: OnDecision,
        *,
        on_forget: OnForget,
        should_stop: Callable[[], bool] = lambda: False,
    ) -> ChannelStats:
        """Hand decisions to ``on_decision`` and forget records to ``on_forget`` until ``should_stop()``.

        An exception from either function stops the run, leaves the consumer
        group and propagates: the record is read again by the next run (with
        ``attempt`` one higher). So do :class:`InfraError` (Kafka, Redis) and
        :class:`ConfigError` (no such topic). Call ``run`` again, or
        :meth:`close`.
        """
        from confluent_kafka import KafkaException

        self._open()
        consumer = self._consumer
        try:
            consumer.subscribe([self.topic], on_assign=self._on_assign, on_revoke=self._on_revoke)
            while not should_stop():
                try:
                    messages = consumer.consume(500, self._wait_s())
                except KafkaException as exc:
                    raise InfraError(f"reading {self.topic} failed: {exc}") from exc
                for message in messages:
                    self._take(message, on_decision, on_forget)
                now = self.clock()
                for part, hold in list(self._holds.items()):
                    for entry in hold.due(now):
                        self._hand(part, hold, entry, on_decision, on_forget)
                self._backpressure()
                self._commit()
        except BaseException:
            # Leave the group: the next run starts from the committed offsets, so the record
            # in hand is read again (this consumer's position is already past it).
            self._commit()
            self._consumer = None
            self._holds.clear()
            self._committed.clear()
            consumer.close()
            raise
        self._commit()
        return self.stats

    def close(self) -> None:
        """Leave the group, flush reported outcomes, close Redis. Safe to call twice."""
        try:
            if self._consumer is not None:
                self._consumer.close()
                self._consumer = None
            self.flush()
        finally:
            if self._redis is not None:
                self._runner.run(self._redis.aclose())
                self._redis = None
            self._runner.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the loop's parts -----------------------------------------------------------

    def _open(self) -> None:
        from confluent_kafka import KafkaException

        from streams.clients import kafka_consumer, redis_client
        from streams.live.codecs import make_codecs

        if self._ledger is None:
            self._redis = redis_client(self.settings.redis, timeout_s=5.0)
            self._ledger = Ledger(self._redis, ttl_ms=self._ttl_ms)
        if self._decode is None:
            self._decode = make_codecs(self.settings).decode_decision
        if self._consumer is not None:
            return
        self._consumer = kafka_consumer(
            self.settings.kafka,
            **{
                "group.id": self.group,
                "enable.auto.commit": False,
                "auto.offset.reset": self.start,
                "isolation.level": "read_committed",
                # A killed client's partitions move on after this (TACTFUL_SESSION_TIMEOUT), as a worker's do.
                "session.timeout.ms": int(self.settings.processing.session_timeout * 1000),
            },
        )
        try:
            meta = self._consumer.list_topics(self.topic, timeout=self.settings.processing.start_timeout)
        except KafkaException as exc:
            raise InfraError(
                f"Kafka at {self.settings.kafka.bootstrap_servers} did not answer: {exc.args[0] if exc.args else exc}"
            ) from exc
        info = meta.topics.get(self.topic)
        if info is None or info.error is not None:
            raise ConfigError(f"no decision topic {self.topic!r} for channel {self.channel!r}")

    def _on_assign(self, consumer: Any, partitions: list[Any]) -> None:
        for tp in partitions:
            self._holds[(tp.topic, tp.partition)] = PartitionHold()

    def _on_revoke(self, consumer: Any, partitions: list[Any]) -> None:
        self._commit()
        for tp in partitions:
            self._holds.pop((tp.topic, tp.partition), None)
            self._committed.pop((tp.topic, tp.partition), None)
        self._paused = False

    def _wait_s(self) -> float:
        """How long one poll may wait: until the next held decision is due, at most half a second."""
        dues = [d for d in (h.next_due() for h in self._holds.values()) if d is not None]
        if not dues:
            return 0.5
        return min(0.5, max(0.0, (min(dues) - self.clock()) / 1000))

    def _take(self, message: Any, on_decision: OnDecision, on_forget: OnForget) -> None:
        assert self._decode is not None
        item = decision_or_forget(message, self._decode, self._skip)
        if message.error() is not None:
            return
        part: Partition = (message.topic(), message.partition())
        hold = self._holds.setdefault(part, PartitionHold())
        offset = int(message.offset())
        now = self.clock()
        if item is None:
            hold.skip(offset)
            return
        if isinstance(item, Forget):
            dropped = hold.forget(item.customer_id)
            self.stats.dropped += len(dropped)
            entry: Entry[Decision | Forget] = Entry(offset, item.customer_id, None, item)
        else:
            if item.expires_at is not None and item.expires_at <= now:
                self.stats.expired += 1
                hold.skip(offset)
                return
            entry = Entry(offset, item.customer_id, item.not_before, item)
        if hold.add(entry, now) is not None:
            self._hand(part, hold, entry, on_decision, on_forget)

    def _skip(self, reason: str) -> None:
        self.stats.skipped[reason] += 1

    def _hand(
        self,
        part: Partition,
        hold: PartitionHold[Decision | Forget],
        entry: Entry[Decision | Forget],
        on_decision: OnDecision,
        on_forget: OnForget,
    ) -> None:
        assert self._ledger is not None
        item = entry.item
        if isinstance(item, Forget):
            key = forget_key(self.settings.redis.prefix, self.group, item.customer_id, item.erased_at)
        else:
            if item.expires_at is not None and item.expires_at <= self.clock():
                self.stats.expired += 1  # expired while held for its not_before
                hold.finish(entry.offset)
                return
            key = decision_key(self.settings.redis.prefix, self.group, item.decision_id)
        attempt = self._runner.run(self._ledger.claim(key))
        if attempt is None:
            self.stats.duplicates += 1
            hold.finish(entry.offset)
            return
        if attempt > 1:
            self.stats.redelivered += 1
        if isinstance(item, Forget):
            on_forget(item)
        else:
            on_decision(Delivery(item, attempt, part[0], part[1], entry.offset))
        self.flush()
        self._runner.run(self._ledger.done(key))
        if isinstance(item, Forget):
            self.stats.forgets += 1
        else:
            self.stats.handed += 1
        hold.finish(entry.offset)

    def _backpressure(self) -> None:
        held = sum(h.held_count for h in self._holds.values())
        assignment = self._consumer.assignment()
        if held >= self.max_held and not self._paused and assignment:
            log.warning("%d decisions held for their not_before: reading paused until some are due", held)
            self._consumer.pause(assignment)
            self._paused = True
        elif held < self.max_held and self._paused:
            self._consumer.resume(assignment)
            self._paused = False

    def _commit(self) -> None:
        from confluent_kafka import KafkaException, TopicPartition

        if self._consumer is None:
            return
        offsets = []
        for part, hold in self._holds.items():
            point = hold.commit_point()
            if point is not None and self._committed.get(part) != point:
                offsets.append(TopicPartition(part[0], part[1], point))
        if not offsets:
            return
        try:
            self._consumer.commit(offsets=offsets, asynchronous=False)
        except KafkaException as exc:
            # A commit refused in a rebalance is made again by whoever owns the partition next.
            log.warning("committing %s offsets failed: %s", self.topic, exc)
            return
        for tp in offsets:
            self._committed[(tp.topic, tp.partition)] = tp.offset
